//! The properties oxinfer's loaders must keep on any input bytes, as functions that panic when
//! one is broken. The cargo-fuzz targets in `fuzz/` and the corpus test below call the same code,
//! so CI checks on the committed corpus exactly what `cargo fuzz run` checks on mutations.
//!
//! The properties: loading returns (no panic escapes, no abort); a failure is `ERR_MODEL_LOAD`
//! with a message; a model that loads and has small, fixed input shapes runs on zeros, and that
//! run either succeeds with outputs of its declared element types or fails with a typed engine
//! or input error (its outputs, in declared order, hold as many elements as their shapes say).

use crate::error::{Error, ErrorCode};
use crate::tensor::{Dim, Feed};
use crate::tract::{LoadOptions, ModelSource, TractModel};

/// Inputs larger than this many elements are not run (a mutated dim can ask for terabytes).
pub const MAX_RUN_ELEMENTS: usize = 1 << 20;

/// What one input did; for statistics, not for checking (the checks panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Rejected,
    Loaded,
    Ran,
    RunFailed,
}

fn check_error(stage: &str, e: &Error, allowed: &[ErrorCode]) {
    assert!(
        allowed.contains(&e.code),
        "{stage}: error code {} is not one of {allowed:?}: {}",
        e.code,
        e.message
    );
    assert!(!e.message.trim().is_empty(), "{stage}: {} with an empty message", e.code);
}

/// Loads `bytes` as an ONNX model (one thread, no cache) and, when it loads with small fixed
/// input shapes, runs it once on zeros. Panics when a property above is broken.
pub fn load_and_run_onnx(bytes: &[u8]) -> Outcome {
    let options = LoadOptions { threads: Some(1), ..Default::default() };
    let model = match TractModel::load(ModelSource::Bytes(bytes), &options) {
        Ok(m) => m,
        Err(e) => {
            check_error("load", &e, &[ErrorCode::ModelLoad]);
            return Outcome::Rejected;
        }
    };
    let mut shapes = Vec::new();
    for info in model.inputs() {
        let shape: Option<Vec<usize>> = info
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                Dim::Symbol(_) => None,
            })
            .collect();
        match shape {
            Some(s) if s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_some_and(|n| n <= MAX_RUN_ELEMENTS) => {
                shapes.push(s)
            }
            _ => return Outcome::Loaded,
        }
    }
    let buffers: Vec<Vec<u8>> = model
        .inputs()
        .iter()
        .zip(&shapes)
        .map(|(info, s)| vec![0u8; s.iter().product::<usize>() * info.dtype.size()])
        .collect();
    let feeds: Vec<Feed<'_>> = model
        .inputs()
        .iter()
        .zip(&shapes)
        .zip(&buffers)
        .map(|((info, s), b)| Feed::new(&info.name, info.dtype, s, b))
        .collect();
    match model.run(&feeds) {
        Ok(outputs) => {
            assert_eq!(outputs.len(), model.outputs().len(), "run: output count differs from the model's");
            for (out, info) in outputs.iter().zip(model.outputs()) {
                assert_eq!(out.name, info.name, "run: outputs out of order");
                assert_eq!(out.len(), out.shape.iter().product::<usize>(), "run: output '{}' length vs shape", out.name);
            }
            Outcome::Ran
        }
        Err(e) => {
            check_error("run", &e, &[ErrorCode::Engine, ErrorCode::InputShape, ErrorCode::InputDtype]);
            Outcome::RunFailed
        }
    }
}

/// Which file of a model folder a fuzz input replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderFile {
    Config,
    Tokenizer,
    Weights,
}

impl FolderFile {
    pub const ALL: [FolderFile; 3] = [FolderFile::Config, FolderFile::Tokenizer, FolderFile::Weights];
    pub fn file_name(self) -> &'static str {
        match self {
            FolderFile::Config => "config.json",
            FolderFile::Tokenizer => "tokenizer.json",
            FolderFile::Weights => "model.safetensors",
        }
    }
}

/// Texts each loaded embedder embeds: empty, plain, non-ASCII, and longer than a tiny model's
/// position table.
pub const FUZZ_TEXTS: [&str; 4] = ["", "a plain sentence", "naïve café 東京 🙂", "long long long long long long long long long long long long long long long long long long long long"];

/// Copies the model folder `seed` into `work` with `file` replaced by `bytes`, loads it as an
/// embedder (one thread, no cache) and, when it loads, embeds [`FUZZ_TEXTS`]. Panics when a
/// property is broken: load errors are `ERR_MODEL_LOAD`, embed errors `ERR_ENGINE`, and the
/// result has one vector per text, of the model's width.
pub fn load_and_embed_folder(seed: &std::path::Path, work: &std::path::Path, file: FolderFile, bytes: &[u8]) -> Outcome {
    use crate::candle::{Embedder, EmbedderOptions};
    std::fs::create_dir_all(work).expect("fuzz work folder");
    for f in FolderFile::ALL {
        let dst = work.join(f.file_name());
        if f == file {
            std::fs::write(&dst, bytes).expect("write fuzz input");
        } else {
            std::fs::copy(seed.join(f.file_name()), &dst).expect("copy seed file (is the seed folder complete?)");
        }
    }
    let options = EmbedderOptions { threads: Some(1), ..Default::default() };
    let embedder = match Embedder::load(work, &options) {
        Ok(e) => e,
        Err(e) => {
            check_error("load", &e, &[ErrorCode::ModelLoad]);
            return Outcome::Rejected;
        }
    };
    let texts: Vec<String> = FUZZ_TEXTS.iter().map(|s| s.to_string()).collect();
    match embedder.embed(&texts, 2, &crate::Cancel::never()) {
        Ok(v) => {
            assert_eq!((v.rows, v.dims), (texts.len(), embedder.dims()), "embed: matrix shape");
            assert_eq!(v.data.len(), v.rows * v.dims, "embed: data length");
            Outcome::Ran
        }
        Err(e) => {
            check_error("embed", &e, &[ErrorCode::Engine]);
            Outcome::RunFailed
        }
    }
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs one fuzz case. Panics that oxinfer catches (engine bugs turned into ERR_MODEL_LOAD or
/// ERR_ENGINE) are not findings, but libFuzzer's panic hook aborts on every panic, caught or not;
/// so the hook is replaced by one that only remembers the message, and a panic that escapes `f`
/// is printed here and re-raised for libFuzzer to record. OXINFER_FUZZ_PANICS=1 keeps libFuzzer's
/// hook, to collect the caught engine panics as findings too.
pub fn fuzz_one<T>(f: impl FnOnce() -> T) -> T {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        if std::env::var_os("OXINFER_FUZZ_PANICS").is_none() {
            std::panic::set_hook(Box::new(|info| {
                LAST_PANIC.with(|m| *m.borrow_mut() = info.to_string());
            }));
        }
    });
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            LAST_PANIC.with(|m| eprintln!("oxinfer fuzz: a panic escaped: {}", m.borrow()));
            std::panic::resume_unwind(payload)
        }
    }
}

/// The short, deterministic version of the fuzz targets that CI runs: every seed model and every
/// committed regression input, then a few hundred seeded mutations of the seeds, through the same
/// property functions as `cargo fuzz run`.
#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn fixtures() -> PathBuf {
        let dir = repo().join(".cache/fixtures");
        assert!(
            dir.join("add.onnx").is_file(),
            "test fixtures are missing in {}: run `node scripts/fixtures.mjs` first (npm test does)",
            dir.display()
        );
        dir
    }

    fn files_in(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.is_file() && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)));
        v.retain(|p| !p.ends_with("README"));
        v.sort();
        v
    }

    /// xorshift64*: the same mutations on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// One of libFuzzer's simpler mutations: flip bits, overwrite a byte with an edge value,
    /// truncate, or duplicate a chunk.
    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        if b.is_empty() {
            return b;
        }
        match rng.below(4) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(b.len());
                b[i] = [0x00, 0x01, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            2 => b.truncate(rng.below(b.len())),
            _ => {
                let start = rng.below(b.len());
                let end = (start + 1 + rng.below(64)).min(b.len());
                let at = rng.below(b.len());
                let chunk = b[start..end].to_vec();
                b.splice(at..at, chunk);
            }
        }
        b
    }

    #[test]
    fn onnx_seeds_regressions_and_mutations_keep_the_properties() {
        let fx = fixtures();
        let ordinary = files_in(&fx, Some("onnx"));
        let hostile = files_in(&fx.join("hostile"), Some("onnx"));
        assert!(hostile.len() >= 20, "the hostile models are missing in {}: run `node scripts/fixtures.mjs`", fx.display());
        let regressions = files_in(&repo().join("crates/oxinfer-core/fuzz/regressions/load_onnx"), None);
        let count = |paths: &[PathBuf]| {
            let mut counts = std::collections::HashMap::<Outcome, usize>::new();
            for path in paths {
                *counts.entry(load_and_run_onnx(&std::fs::read(path).unwrap())).or_default() += 1;
            }
            counts
        };
        // The ordinary fixtures load (those with symbolic dims are not run: no shape to feed).
        let ok = count(&ordinary);
        assert_eq!(ok.get(&Outcome::Rejected), None, "an ordinary fixture was rejected: {ok:?}");
        assert!(ok.get(&Outcome::Ran).is_some(), "no ordinary fixture ran: {ok:?}");
        let bad = count(&[hostile.clone(), regressions].concat());
        assert!(bad.get(&Outcome::Rejected).copied().unwrap_or(0) >= 20, "most hostile models must be rejected: {bad:?}");
        let seeds = [ordinary, hostile].concat();
        // Mutations of the small seeds (the large ones cost seconds per case).
        let small: Vec<Vec<u8>> = seeds
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .filter(|b| b.len() <= 64 * 1024)
            .collect();
        let mut rng = Rng(0x0A11_CE5E_ED00_0001);
        for _ in 0..300 {
            let seed = &small[rng.below(small.len())];
            load_and_run_onnx(&mutate(&mut rng, seed));
        }
    }

    #[test]
    fn model_folder_mutations_keep_the_properties() {
        let seed = fixtures().join("tiny-bert");
        let work = std::env::temp_dir().join(format!("oxinfer-fuzz-test-{}", std::process::id()));
        assert_eq!(load_and_embed_folder(&seed, &work, FolderFile::Config, &std::fs::read(seed.join("config.json")).unwrap()), Outcome::Ran);
        for path in files_in(&repo().join("crates/oxinfer-core/fuzz/regressions/embedder_folder"), None) {
            let bytes = std::fs::read(path).unwrap();
            if let Some((&pick, content)) = bytes.split_first() {
                load_and_embed_folder(&seed, &work, FolderFile::ALL[pick as usize % 3], content);
            }
        }
        let mut rng = Rng(0x5EED_F01D_E200_0002);
        for file in FolderFile::ALL {
            let original = std::fs::read(seed.join(file.file_name())).unwrap();
            for _ in 0..25 {
                load_and_embed_folder(&seed, &work, file, &mutate(&mut rng, &original));
            }
        }
        let _ = std::fs::remove_dir_all(&work);
    }
}
