//! Checks on the ONNX graph as written, before tract analyses it: attribute values that tract
//! accepts but that make its analysis run away in time or memory are refused here, with a
//! message naming the node. (Found by fuzzing: a Transpose whose perm repeats an axis took
//! seconds and gigabytes to load.)

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

/// What is wrong, naming the node.
type Result<T> = std::result::Result<T, String>;

pub(super) fn check_model(proto: &ModelProto) -> Result<()> {
    proto.graph.as_ref().map_or(Ok(()), check_graph)
}

fn check_graph(graph: &GraphProto) -> Result<()> {
    for (ix, node) in graph.node.iter().enumerate() {
        check_node(node).map_err(|why| match node.name.as_str() {
            "" => format!("node #{ix} of graph '{}' ({}): {why}", graph.name, node.op_type),
            name => format!("node '{name}' ({}): {why}", node.op_type),
        })?;
        // If/Loop/Scan bodies; prost's decoder already bounds how deep they nest.
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                check_graph(sub)?;
            }
        }
    }
    Ok(())
}

fn check_node(node: &NodeProto) -> Result<()> {
    if node.op_type == "Transpose" {
        if let Some(perm) = node.attribute.iter().find(|a| a.name == "perm") {
            check_permutation(&perm.ints).map_err(|why| {
                format!("perm {:?} is not a permutation of 0..{}: {why}", perm.ints, perm.ints.len())
            })?;
        }
    }
    Ok(())
}

fn check_permutation(perm: &[i64]) -> Result<()> {
    let mut seen = vec![false; perm.len()];
    for &p in perm {
        let ix = usize::try_from(p).ok().filter(|&ix| ix < perm.len()).ok_or_else(|| format!("axis {p} is out of range"))?;
        if std::mem::replace(&mut seen[ix], true) {
            return Err(format!("axis {p} appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_permutation;

    #[test]
    fn permutations() {
        assert!(check_permutation(&[]).is_ok());
        assert!(check_permutation(&[0, 2, 1, 3]).is_ok());
        assert_eq!(check_permutation(&[0, 2, 3, 3]).unwrap_err(), "axis 3 appears twice");
        assert_eq!(check_permutation(&[0, 4, 1, 2]).unwrap_err(), "axis 4 is out of range");
        assert_eq!(check_permutation(&[-1, 0]).unwrap_err(), "axis -1 is out of range");
    }
}
