//! [`simd_kernel!`]: compiles a loop for AVX-512 and AVX2 as well as the baseline and picks the
//! widest the CPU has at run time. The crate itself is built for baseline x86-64, whose SSE2
//! gives 4 lanes where AVX-512 gives 16; the engines' hot elementwise loops (candle's softmax
//! and GELU, the tract fast paths' pooling) are written as plain loops and compiled three ways.

/// `simd_kernel!(fn name(args) { body })` defines `name(args)`, running `body` compiled with
/// AVX-512F, else AVX2 + FMA, else the build's baseline, as the CPU allows. `body` should be
/// plain loops over slices that the compiler can vectorize; it must not be `unsafe`.
macro_rules! simd_kernel {
    // `simd_kernel!(avx2; fn ...)`: AVX2 + FMA or the baseline only, for loops written for
    // eight lanes, which an AVX-512 copy would not speed up (and which add to the addon's size).
    (avx2; $(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_kernel;
