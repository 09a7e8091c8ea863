//! A model folder with one file replaced by the input: the first byte picks config.json,
//! tokenizer.json or model.safetensors, the rest is its content; the other two come from the
//! seed folder (OXINFER_FUZZ_SEED_FOLDER, default: the tiny-bert fixture). Load, then embed.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oxinfer_core::fuzzing::{FolderFile, fuzz_one, load_and_embed_folder};

struct Folders {
    seed: PathBuf,
    work: PathBuf,
}

fn folders() -> &'static Folders {
    static F: OnceLock<Folders> = OnceLock::new();
    F.get_or_init(|| {
        let seed = std::env::var_os("OXINFER_FUZZ_SEED_FOLDER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../.cache/fixtures/tiny-bert"));
        let work = std::env::temp_dir().join(format!("oxinfer-fuzz-folder-{}", std::process::id()));
        Folders { seed, work }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else { return };
    let file = FolderFile::ALL[pick as usize % FolderFile::ALL.len()];
    let f = folders();
    fuzz_one(|| load_and_embed_folder(&f.seed, &f.work, file, content));
});
