//! The process-wide model cache, exposed to JS (stats, memory budget, clear).

use napi_derive::napi;
use oxinfer_core::cache::global;

#[napi(object)]
pub struct NativeCacheEntry {
    pub key: String,
    pub engine: String,
    pub holders: u32,
    pub bytes: f64,
}

#[napi(object)]
pub struct NativeCacheStats {
    pub entries: Vec<NativeCacheEntry>,
    pub loads: f64,
    pub hits: f64,
    pub evictions: f64,
    pub bytes: f64,
    pub budget: Option<f64>,
}

#[napi]
pub fn cache_stats() -> NativeCacheStats {
    let s = global().stats();
    NativeCacheStats {
        entries: s
            .entries
            .into_iter()
            .map(|e| NativeCacheEntry {
                key: e.key,
                engine: e.engine.to_string(),
                holders: e.holders as u32,
                bytes: e.bytes as f64,
            })
            .collect(),
        loads: s.loads as f64,
        hits: s.hits as f64,
        evictions: s.evictions as f64,
        bytes: s.bytes as f64,
        budget: s.budget.map(|b| b as f64),
    }
}

/// Bytes of models nobody holds that the cache may keep warm; null: keep none.
#[napi]
pub fn set_cache_budget(bytes: Option<f64>) {
    global().set_budget(bytes.map(|b| if b.is_finite() && b > 0.0 { b as usize } else { 0 }));
}

#[napi]
pub fn clear_cache() {
    global().clear()
}
