//! External data: tensors whose bytes live in files beside the model (`model.onnx_data`), as
//! exporters write models over protobuf's 2 GB limit and as hubs ship large models.
//!
//! Files the caller gives as bytes are copied into the tensors here. Otherwise a model loaded by
//! path leaves them to tract's reader, which maps each file from the model's folder; this pass
//! only checks that every file is there, so a missing one is named with its tensor. A model
//! given as bytes, with no files, has nowhere to look: that is an error naming the files.

use std::path::{Component, Path};

use tract_onnx::pb::{GraphProto, ModelProto, TensorProto, tensor_proto::DataLocation};

use crate::error::{Error, Result};

/// Fills or checks every external tensor of `proto` (initializers and `Constant` values, in
/// subgraphs too).
pub(crate) fn resolve(proto: &mut ModelProto, dir: Option<&Path>, files: &[(String, &[u8])]) -> Result<()> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(()) };
    visit_graph(graph, &mut |t| resolve_tensor(t, dir, files))
}

fn visit_graph(graph: &mut GraphProto, f: &mut dyn FnMut(&mut TensorProto) -> Result<()>) -> Result<()> {
    for t in &mut graph.initializer {
        f(t)?;
    }
    for node in &mut graph.node {
        for attr in &mut node.attribute {
            if let Some(t) = attr.t.as_mut() {
                f(t)?;
            }
            for t in &mut attr.tensors {
                f(t)?;
            }
            if let Some(g) = attr.g.as_mut() {
                visit_graph(g, f)?;
            }
            for g in &mut attr.graphs {
                visit_graph(g, f)?;
            }
        }
    }
    Ok(())
}

struct Location<'p> {
    file: &'p str,
    offset: usize,
    length: Option<usize>,
}

fn location(t: &TensorProto) -> Result<Location<'_>> {
    let field = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
    let number = |key: &str| -> Result<Option<usize>> {
        field(key)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    Error::model_load(format!("tensor '{}': external data {key} '{v}' is not a byte count", t.name))
                })
            })
            .transpose()
    };
    let file = field("location").ok_or_else(|| {
        Error::model_load(format!("tensor '{}' is marked external but names no file (no 'location')", t.name))
    })?;
    Ok(Location { file, offset: number("offset")?.unwrap_or(0), length: number("length")? })
}

fn resolve_tensor(t: &mut TensorProto, dir: Option<&Path>, files: &[(String, &[u8])]) -> Result<()> {
    if t.data_location != Some(DataLocation::External as i32) || !t.raw_data.is_empty() {
        return Ok(());
    }
    let at = location(t)?;
    let relative = Path::new(at.file);
    if relative.is_absolute() || relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(Error::model_load(format!(
            "tensor '{}': external data location '{}' must be a file name relative to the model's folder",
            t.name, at.file
        )));
    }
    let given = files.iter().find(|(name, _)| {
        let name = Path::new(name.as_str());
        name == relative || name.file_name() == relative.file_name()
    });
    if let Some((name, data)) = given {
        let end = match at.length {
            Some(len) => at.offset.checked_add(len),
            None => Some(data.len()),
        };
        let bytes = end.filter(|&e| e <= data.len() && at.offset <= e).map(|e| &data[at.offset..e]).ok_or_else(|| {
            Error::model_load(format!(
                "tensor '{}': external data '{name}' has {} bytes, but the tensor is at offset {} with length {}",
                t.name,
                data.len(),
                at.offset,
                at.length.map_or("to the end".to_string(), |l| l.to_string())
            ))
        })?;
        t.raw_data = bytes.to_vec();
        t.external_data.clear();
        t.data_location = Some(DataLocation::Default as i32);
        return Ok(());
    }
    match dir {
        Some(dir) if dir.join(relative).is_file() => Ok(()),
        Some(dir) => Err(Error::model_load(format!(
            "tensor '{}' keeps its data in '{}', which is not in the model's folder '{}'",
            t.name,
            at.file,
            dir.display()
        ))),
        None => Err(Error::model_load(format!(
            "the model keeps tensor '{}' in the external file '{}': load the model by its path (the \
             file beside it), or pass that file's bytes in the load option externalData",
            t.name, at.file
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::StringStringEntryProto;

    fn external(name: &str, file: &str, offset: usize, length: usize) -> TensorProto {
        let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
        TensorProto {
            name: name.into(),
            data_location: Some(DataLocation::External as i32),
            external_data: vec![
                entry("location", file.into()),
                entry("offset", offset.to_string()),
                entry("length", length.to_string()),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn given_bytes_fill_the_tensor_slice() {
        let data: Vec<u8> = (0..16).collect();
        let mut t = external("w", "model.onnx_data", 4, 8);
        resolve_tensor(&mut t, None, &[("model.onnx_data".into(), &data)]).unwrap();
        assert_eq!(t.raw_data, (4..12).collect::<Vec<u8>>());
        assert_eq!(t.data_location, Some(DataLocation::Default as i32));
    }

    #[test]
    fn out_of_range_missing_and_escaping_files_are_named() {
        let data = [0u8; 8];
        let mut t = external("w", "model.onnx_data", 4, 8);
        let e = resolve_tensor(&mut t, None, &[("model.onnx_data".into(), &data)]).unwrap_err();
        assert!(e.message.contains("has 8 bytes"), "{}", e.message);
        let e = resolve_tensor(&mut t, None, &[]).unwrap_err();
        assert!(e.message.contains("externalData") && e.message.contains("'w'"), "{}", e.message);
        let e = resolve_tensor(&mut t, Some(Path::new("/nonexistent-dir")), &[]).unwrap_err();
        assert!(e.message.contains("not in the model's folder"), "{}", e.message);
        let mut t = external("w", "../secret", 0, 1);
        let e = resolve_tensor(&mut t, Some(Path::new(".")), &[]).unwrap_err();
        assert!(e.message.contains("relative to the model's folder"), "{}", e.message);
    }
}
