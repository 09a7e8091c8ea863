//! The model cache shared by every engine.
//!
//! - Loading one key twice returns the same model (one `Arc`), and concurrent loads of one
//!   key do the work once: the first caller loads, the others wait on the same `OnceLock`.
//! - Each load returns a [`Handle`]; dropping it (a JS `dispose()`, or garbage collection)
//!   releases the model. With no memory budget, a model nobody holds is dropped at once
//!   (in-flight runs keep their own `Arc` and finish). With a budget, models nobody holds stay
//!   warm for the next load until the total size exceeds the budget, then the least recently
//!   used of them are evicted.
//! - A failed load is not cached: the next load of that key tries again.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::error::Result;

type AnyModel = Arc<dyn Any + Send + Sync>;
type Slot = Arc<OnceLock<Result<(AnyModel, usize)>>>;

struct Entry {
    engine: &'static str,
    slot: Slot,
    holders: usize,
    bytes: usize,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    budget: Option<usize>,
    clock: u64,
    loads: u64,
    hits: u64,
    evictions: u64,
}

/// One cached model, as `stats()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryStats {
    pub key: String,
    pub engine: &'static str,
    /// Handles alive (a load still in progress counts its waiting callers).
    pub holders: usize,
    /// Estimated memory of the model (0 while it loads).
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: Vec<EntryStats>,
    /// Loads that did the work.
    pub loads: u64,
    /// Loads answered by a model already loaded or loading.
    pub hits: u64,
    pub evictions: u64,
    /// Sum of the entries' bytes.
    pub bytes: usize,
    pub budget: Option<usize>,
}

/// A model's memory estimate, for the budget.
pub trait Weigh {
    fn bytes(&self) -> usize;
}

pub struct ModelCache {
    inner: Mutex<Inner>,
}

/// The process-wide cache.
pub fn global() -> &'static ModelCache {
    static CACHE: OnceLock<ModelCache> = OnceLock::new();
    CACHE.get_or_init(ModelCache::new)
}

impl Default for ModelCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelCache {
    pub fn new() -> Self {
        ModelCache { inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the model of `key`, loading it with `load` unless it is loaded or loading.
    /// Blocks while another caller loads the same key.
    pub fn acquire<M: Weigh + Send + Sync + 'static>(
        &'static self,
        engine: &'static str,
        key: String,
        load: impl FnOnce() -> Result<M>,
    ) -> Result<Handle<M>> {
        let slot = {
            let mut inner = self.lock();
            let entry = inner.entries.entry(key.clone()).or_insert_with(|| Entry {
                engine,
                slot: Arc::new(OnceLock::new()),
                holders: 0,
                bytes: 0,
                last_used: 0,
            });
            entry.holders += 1;
            Arc::clone(&entry.slot)
        };
        let mut loaded_here = false;
        let result = slot.get_or_init(|| {
            loaded_here = true;
            load().map(|m| {
                let bytes = m.bytes();
                (Arc::new(m) as AnyModel, bytes)
            })
        });
        let mut inner = self.lock();
        match result {
            Ok((model, bytes)) => {
                let model = Arc::clone(model)
                    .downcast::<M>()
                    .expect("cache keys are prefixed by engine, so one key has one model type");
                inner.clock += 1;
                let now = inner.clock;
                if let Some(entry) = inner.entries.get_mut(&key) {
                    entry.bytes = *bytes;
                    entry.last_used = now;
                }
                if loaded_here {
                    inner.loads += 1;
                } else {
                    inner.hits += 1;
                }
                evict(&mut inner);
                Ok(Handle { cache: self, key, model })
            }
            Err(e) => {
                let e = e.clone();
                release(&mut inner, &key, &slot);
                Err(e)
            }
        }
    }

    /// Keeps models nobody holds while their total stays within `bytes` (None: drop them as
    /// soon as their last handle goes). Evicts at once if needed.
    pub fn set_budget(&self, bytes: Option<usize>) {
        let mut inner = self.lock();
        inner.budget = bytes;
        evict(&mut inner);
    }

    /// Drops every model nobody holds.
    pub fn clear(&self) {
        let mut inner = self.lock();
        let before = inner.entries.len();
        inner.entries.retain(|_, e| e.holders > 0);
        inner.evictions += (before - inner.entries.len()) as u64;
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        let mut entries: Vec<EntryStats> = inner
            .entries
            .iter()
            .map(|(k, e)| EntryStats {
                key: k.clone(),
                engine: e.engine,
                holders: e.holders,
                bytes: e.bytes,
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        CacheStats {
            bytes: entries.iter().map(|e| e.bytes).sum(),
            entries,
            loads: inner.loads,
            hits: inner.hits,
            evictions: inner.evictions,
            budget: inner.budget,
        }
    }
}

/// Gives up one hold on `key` (when it is still the entry of `slot`); an entry nobody holds is
/// dropped, or kept for the budget when its model loaded.
fn release(inner: &mut Inner, key: &str, slot: &Slot) {
    let Some(entry) = inner.entries.get_mut(key) else { return };
    if !Arc::ptr_eq(&entry.slot, slot) {
        return;
    }
    entry.holders = entry.holders.saturating_sub(1);
    if entry.holders == 0 {
        let loaded = matches!(entry.slot.get(), Some(Ok(_)));
        if !loaded || inner.budget.is_none() {
            inner.entries.remove(key);
        } else {
            evict(inner);
        }
    }
}

/// Evicts least recently used models nobody holds until the total fits the budget.
fn evict(inner: &mut Inner) {
    let Some(budget) = inner.budget else {
        return;
    };
    loop {
        let total: usize = inner.entries.values().map(|e| e.bytes).sum();
        if total <= budget {
            return;
        }
        let victim = inner
            .entries
            .iter()
            .filter(|(_, e)| e.holders == 0)
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                inner.entries.remove(&k);
                inner.evictions += 1;
            }
            None => return, // everything left is held
        }
    }
}

/// A hold on a cached model. Dropping it releases the hold.
pub struct Handle<M: Send + Sync + 'static> {
    cache: &'static ModelCache,
    key: String,
    model: Arc<M>,
}

impl<M: Send + Sync + 'static> Handle<M> {
    /// The model, for work that must outlive this handle (an in-flight run).
    pub fn model(&self) -> &Arc<M> {
        &self.model
    }
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl<M: Send + Sync + 'static> std::ops::Deref for Handle<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: Send + Sync + 'static> Drop for Handle<M> {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        let Some(slot) = inner.entries.get(&self.key).map(|e| Arc::clone(&e.slot)) else {
            return;
        };
        // Only release the entry this handle came from (a cleared key may have been reloaded).
        let ours = matches!(slot.get(), Some(Ok((m, _))) if same_model(m, &self.model));
        if ours {
            release(&mut inner, &self.key, &slot);
        }
    }
}

/// A model held through the cache or owned outright (a load with the cache turned off).
pub enum Held<M: Send + Sync + 'static> {
    Cached(Handle<M>),
    Owned(Arc<M>),
}

impl<M: Send + Sync + 'static> Held<M> {
    pub fn load(use_cache: bool, cached: impl FnOnce() -> Result<Handle<M>>, owned: impl FnOnce() -> Result<M>) -> Result<Self> {
        if use_cache { cached().map(Held::Cached) } else { owned().map(|m| Held::Owned(Arc::new(m))) }
    }
    pub fn model(&self) -> &Arc<M> {
        match self {
            Held::Cached(h) => h.model(),
            Held::Owned(m) => m,
        }
    }
}

fn same_model<M: 'static>(a: &AnyModel, b: &Arc<M>) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const u8, Arc::as_ptr(b) as *const u8)
}

/// Identity of a file for a cache key: canonical path, size and modification time, so an edited
/// file is loaded again.
pub fn file_identity(path: &std::path::Path) -> std::io::Result<String> {
    let canonical = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&canonical)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{}#{}#{}", canonical.display(), meta.len(), mtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct Model(usize);
    impl Weigh for Model {
        fn bytes(&self) -> usize {
            self.0
        }
    }

    fn cache() -> &'static ModelCache {
        Box::leak(Box::new(ModelCache::new()))
    }

    #[test]
    fn same_key_same_model_and_loaded_once_under_concurrency() {
        let cache = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let loads = Arc::clone(&loads);
                std::thread::spawn(move || {
                    cache
                        .acquire("t", "k".into(), || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            Ok(Model(10))
                        })
                        .unwrap()
                })
            })
            .collect();
        let got: Vec<Handle<Model>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(got.iter().all(|h| Arc::ptr_eq(h.model(), got[0].model())));
        let s = cache.stats();
        assert_eq!((s.loads, s.hits, s.entries[0].holders), (1, 7, 8));
        drop(got);
        assert!(cache.stats().entries.is_empty(), "no budget: freed with the last handle");
    }

    #[test]
    fn failed_load_is_not_cached() {
        let cache = cache();
        let e = cache.acquire::<Model>("t", "k".into(), || Err(crate::Error::model_load("bad")));
        assert!(e.is_err());
        assert!(cache.stats().entries.is_empty());
        assert!(cache.acquire("t", "k".into(), || Ok(Model(1))).is_ok());
    }

    #[test]
    fn budget_keeps_unheld_models_and_evicts_lru() {
        let cache = cache();
        cache.set_budget(Some(25));
        for k in ["a", "b"] {
            drop(cache.acquire("t", k.into(), || Ok(Model(10))).unwrap());
        }
        assert_eq!(cache.stats().entries.len(), 2, "kept warm within the budget");
        // Touch a, so b is the least recently used; c overflows the budget.
        drop(cache.acquire("t", "a".into(), || Ok(Model(10))).unwrap());
        let c = cache.acquire("t", "c".into(), || Ok(Model(10))).unwrap();
        let keys: Vec<_> = cache.stats().entries.into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(cache.stats().evictions, 1);
        // Held models are never evicted, even over budget.
        cache.set_budget(Some(0));
        assert_eq!(cache.stats().entries.len(), 1);
        drop(c);
        assert!(cache.stats().entries.is_empty());
    }
}
