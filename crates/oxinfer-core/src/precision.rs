//! How products by constant weights are computed, and who computes their parts.

/// The arithmetic of products by constant weights (a model's projections); everything else
/// stays f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 throughout.
    #[default]
    Float32,
    /// Weights and activations rounded to bfloat16, products accumulated in f32, where the CPU has
    /// AVX512-BF16 (crate::bf16); f32 elsewhere.
    Bfloat16,
    /// Weights quantized per column to i8, activations per row to u8, products summed exactly in
    /// i32, where the CPU has AVX512-VNNI (crate::int8); f32 elsewhere.
    Int8,
}

impl Precision {
    /// The precision a load asking for `self` gets on this CPU.
    pub fn effective(self) -> Precision {
        match self {
            Precision::Bfloat16 if crate::bf16::available() => Precision::Bfloat16,
            Precision::Int8 if crate::int8::available() => Precision::Int8,
            _ => Precision::Float32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bfloat16 => "bfloat16",
            Precision::Int8 => "int8",
        }
    }

    /// The precision named `name` (as [`Precision::name`] gives it).
    pub fn parse(name: &str) -> Option<Precision> {
        [Precision::Float32, Precision::Bfloat16, Precision::Int8].into_iter().find(|p| p.name() == name)
    }
}

/// Who computes a product's panels: the calling thread and up to `helpers` threads of `pool`
/// (`None`: the pool the caller runs on), through crate::linger::share.
#[derive(Clone, Copy)]
pub struct Share<'p> {
    pub pool: Option<&'p rayon::ThreadPool>,
    pub helpers: usize,
}
