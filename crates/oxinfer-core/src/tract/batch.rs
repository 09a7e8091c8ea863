//! runBatch: N requests stacked on dim 0 into one engine call, outputs split back per request
//! as views of the one output buffer (no copy).

use tract_onnx::prelude::*;

use crate::dtype::DType;
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::tensor::{Feed, OutputTensor, element_count, shape_string};

use super::TractModel;
use super::bind::{Bindings, check_tensor};
use super::indices::check_indices;

impl TractModel {
    pub fn run_batch(&self, requests: &[Vec<Feed<'_>>]) -> Result<Vec<Vec<OutputTensor>>> {
        self.run_batch_cancellable(requests, &Cancel::never())
    }

    /// [`run_batch`](Self::run_batch), stopping with ERR_ABORTED before its next op once
    /// `cancel` is set.
    pub fn run_batch_cancellable(&self, requests: &[Vec<Feed<'_>>], cancel: &Cancel) -> Result<Vec<Vec<OutputTensor>>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.check_requests(requests)?;
        let total: usize = rows.iter().sum();
        let mut bindings = Bindings::new();
        let mut values = TVec::with_capacity(self.inputs.len());
        for (ix, info) in self.inputs.iter().enumerate() {
            let first = &find(&requests[0], &info.name)?.tensor;
            let mut shape = first.shape.to_vec();
            shape[0] = total;
            let byte_len = element_count(&info.name, &shape)? * first.dtype.size();
            check_tensor(info, first.dtype, &shape, byte_len, &mut bindings)?;
            values.push(self.stack(ix, first.dtype, &shape, requests)?.into_tvalue());
        }
        let outputs = self.execute(values, cancel)?;
        for out in &outputs {
            if out.shape.first() != Some(&total) {
                return Err(Error::engine(format!(
                    "output '{}' has shape {}, not batched on dim 0 (batch of {total} rows); \
                     runBatch needs a model whose outputs have the batch as dim 0",
                    out.name,
                    shape_string(&out.shape)
                )));
            }
        }
        let mut start = 0;
        Ok(rows
            .iter()
            .map(|&n| {
                let split = outputs.iter().map(|o| o.rows(start, start + n)).collect();
                start += n;
                split
            })
            .collect())
    }

    /// Every request names every input once, with the same dtype and the same dims after the
    /// first; returns each request's row count (its inputs' dim 0, which must agree).
    fn check_requests(&self, requests: &[Vec<Feed<'_>>]) -> Result<Vec<usize>> {
        let mut rows = Vec::with_capacity(requests.len());
        for (r, feeds) in requests.iter().enumerate() {
            for feed in feeds {
                if self.input_index(feed.name).is_none() {
                    return Err(in_request(r, self.unknown_input(feed.name)));
                }
            }
            let mut n: Option<(usize, &str)> = None;
            for info in &self.inputs {
                let feed = find(feeds, &info.name).map_err(|_| in_request(r, self.missing_input(info)))?;
                let first = find(&requests[0], &info.name)?;
                let (t, t0) = (&feed.tensor, &first.tensor);
                if t.dtype != t0.dtype {
                    return Err(Error::input_dtype(format!(
                        "request {r}: input '{}' is {}, but request 0 gave {}",
                        info.name, t.dtype, t0.dtype
                    )));
                }
                if t.shape.is_empty() || t.shape[1..] != t0.shape[1..] || t.shape.len() != t0.shape.len() {
                    return Err(Error::input_shape(format!(
                        "request {r}: input '{}' has shape {}, request 0 has {}; runBatch stacks \
                         requests on dim 0, so every dim after the first must match",
                        info.name,
                        shape_string(t.shape),
                        shape_string(t0.shape)
                    )));
                }
                let need = element_count(&info.name, t.shape)? * t.dtype.size();
                if need != t.data.len() {
                    return Err(Error::input_shape(format!(
                        "request {r}: input '{}': shape {} needs {} elements, but the data has {}",
                        info.name,
                        shape_string(t.shape),
                        need / t.dtype.size(),
                        t.data.len() / t.dtype.size()
                    )));
                }
                match n {
                    Some((n0, by)) if n0 != t.shape[0] => {
                        return Err(Error::input_shape(format!(
                            "request {r}: input '{}' has {} rows but input '{by}' has {n0}",
                            info.name, t.shape[0]
                        )));
                    }
                    Some(_) => {}
                    None => n = Some((t.shape[0], &info.name)),
                }
            }
            for limit in &self.index_limits {
                let feed = find(feeds, &self.inputs[limit.input].name)?;
                check_indices(limit, feed.name, feed.tensor.dtype, feed.tensor.data).map_err(|e| in_request(r, e))?;
            }
            rows.push(n.map(|(n, _)| n).unwrap_or(0));
        }
        Ok(rows)
    }

    /// Copies input `ix` of every request into one tensor of `shape`: the run's one input copy.
    fn stack(&self, ix: usize, dtype: DType, shape: &[usize], requests: &[Vec<Feed<'_>>]) -> Result<Tensor> {
        let name = &self.inputs[ix].name;
        let fail = |e: TractError| Error::engine(format!("cannot stack input '{name}': {e:#}"));
        // SAFETY: every byte is written below before the tensor is read.
        let mut tensor = unsafe { Tensor::uninitialized_dt(dtype.to_tract(), shape) }.map_err(fail)?;
        let dst = tensor.as_bytes_mut();
        let mut at = 0;
        for feeds in requests {
            let src = find(feeds, name)?.tensor.data;
            let part = &mut dst[at..at + src.len()];
            if dtype == DType::Bool {
                part.iter_mut().zip(src).for_each(|(d, &s)| *d = u8::from(s != 0));
            } else {
                part.copy_from_slice(src);
            }
            at += src.len();
        }
        Ok(tensor)
    }
}

fn find<'f, 'a>(feeds: &'f [Feed<'a>], name: &str) -> Result<&'f Feed<'a>> {
    feeds
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| Error::input_name(format!("missing input '{name}'")))
}

fn in_request(r: usize, e: Error) -> Error {
    Error::new(e.code, format!("request {r}: {}", e.message))
}
