//! The tract engine without Node: load, run, batch, sessions, errors, threads.
//! Models come from `models/` and from the generated fixtures (`node scripts/fixtures.mjs`).

use std::path::PathBuf;
use std::sync::Arc;

use oxinfer_core::tract::{InputSpec, LoadOptions, ModelSource, Planning, SessionOptions, TractModel, TractSession};
use oxinfer_core::{DType, Dim, ErrorCode, Feed};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    let p = root().join(".cache/fixtures").join(name);
    assert!(p.exists(), "missing fixture {}: run `node scripts/fixtures.mjs`", p.display());
    p
}

fn load(name: &str) -> TractModel {
    TractModel::load(ModelSource::Path(&fixture(name)), &LoadOptions::default()).expect("load")
}

fn f32s(v: &[f32]) -> &[u8] {
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

#[test]
fn add_runs_and_describes_itself() {
    let m = load("add.onnx");
    assert_eq!(m.inputs().len(), 2);
    assert_eq!(m.inputs()[0].name, "a");
    assert_eq!(m.inputs()[0].dtype, DType::Float32);
    assert_eq!(m.inputs()[0].shape, vec![Dim::Fixed(1)]);
    assert_eq!(m.sha256().len(), 64);
    let (a, b) = ([1.5f32], [2.0f32]);
    let out = m
        .run(&[Feed::new("a", DType::Float32, &[1], f32s(&a)), Feed::new("b", DType::Float32, &[1], f32s(&b))])
        .unwrap();
    assert_eq!(out[0].name, "c");
    assert_eq!(out[0].to_vec::<f32>(), vec![3.5]);
}

#[test]
fn errors_name_the_input_and_leave_the_model_usable() {
    let m = load("add.onnx");
    let one = [1.0f32];
    let two = [1.0f32, 2.0];
    let a = Feed::new("a", DType::Float32, &[1], f32s(&one));
    let cases: Vec<(Vec<Feed>, ErrorCode, &str)> = vec![
        (vec![a], ErrorCode::InputName, "missing input 'b'"),
        (vec![a, Feed::new("zz", DType::Float32, &[1], f32s(&one))], ErrorCode::InputName, "no input named 'zz'"),
        (vec![a, a], ErrorCode::InputName, "given twice"),
        (vec![a, Feed::new("b", DType::Int32, &[1], f32s(&one))], ErrorCode::InputDtype, "expected float32, got int32"),
        (vec![a, Feed::new("b", DType::Float32, &[2], f32s(&two))], ErrorCode::InputShape, "expected shape [1], got [2]"),
        (vec![a, Feed::new("b", DType::Float32, &[1], f32s(&two))], ErrorCode::InputShape, "needs 1 elements"),
    ];
    for (feeds, code, text) in cases {
        let e = m.run(&feeds).unwrap_err();
        assert_eq!(e.code, code, "{e}");
        assert!(e.message.contains(text), "{} does not contain {text}", e.message);
        let ok = m.run(&[a, Feed::new("b", DType::Float32, &[1], f32s(&one))]).unwrap();
        assert_eq!(ok[0].to_vec::<f32>(), vec![2.0]);
    }
}

#[test]
fn bad_model_bytes_are_load_errors() {
    for bytes in [&b""[..], &b"not an onnx file"[..], &[0xff; 64][..]] {
        let e = TractModel::load(ModelSource::Bytes(bytes), &LoadOptions::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ModelLoad, "{e}");
    }
    let e = TractModel::load(ModelSource::Path(&root().join("nope.onnx")), &LoadOptions::default()).unwrap_err();
    assert!(e.message.contains("nope.onnx"));
}

#[test]
fn input_facts_fix_symbolic_dims() {
    let opts = LoadOptions {
        inputs: vec![(
            "image".into(),
            InputSpec { dtype: None, shape: Some(vec![Dim::Fixed(2), Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)]) },
        )],
        threads: Some(1),
        ..Default::default()
    };
    let m = TractModel::load(ModelSource::Path(&fixture("cnn.onnx")), &opts).unwrap();
    assert_eq!(m.outputs()[0].shape, vec![Dim::Fixed(2), Dim::Fixed(10)]);
    assert_eq!(m.threads(), 1);
}

#[test]
fn batch_rows_equal_single_runs_and_concurrent_runs_agree() {
    let m = Arc::new(load("cnn.onnx"));
    let images: Vec<Vec<f32>> =
        (0..3).map(|s| (0..3 * 32 * 32).map(|i| ((i * (s + 1)) as f32 * 0.01).sin()).collect()).collect();
    let shape = [1usize, 3, 32, 32];
    let requests: Vec<Vec<Feed>> =
        images.iter().map(|d| vec![Feed::new("image", DType::Float32, &shape, f32s(d))]).collect();
    let batched = m.run_batch(&requests).unwrap();
    for (i, req) in requests.iter().enumerate() {
        let single = m.run(req).unwrap()[0].to_vec::<f32>();
        let row = batched[i][0].to_vec::<f32>();
        assert_eq!(batched[i][0].shape, vec![1, 10]);
        for (a, b) in single.iter().zip(&row) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
    // The plan is shared across threads; every thread gets bitwise the same answer.
    let expected = m.run(&requests[0]).unwrap()[0].to_vec::<f32>();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (m, img) = (Arc::clone(&m), images[0].clone());
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| m.run(&[Feed::new("image", DType::Float32, &shape, f32s(&img))]).unwrap()[0].to_vec::<f32>())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for r in t.join().unwrap() {
            assert_eq!(r, expected);
        }
    }
}

#[test]
fn a_batch_split_across_threads_equals_one_pass() {
    let with = |threads: usize, name: &str| {
        let opts = LoadOptions { threads: Some(threads), ..Default::default() };
        TractModel::load(ModelSource::Path(&fixture(name)), &opts).unwrap()
    };
    let (split, whole) = (with(2, "cnn.onnx"), with(1, "cnn.onnx"));
    assert!(split.splits_batches() && !whole.splits_batches());
    // 5 images: slices of 3 and 2, joined back in order.
    let data: Vec<f32> = (0..5 * 3 * 32 * 32).map(|i| (i as f32 * 0.013).sin()).collect();
    let feeds = [Feed::new("image", DType::Float32, &[5, 3, 32, 32], f32s(&data))];
    let (a, b) = (split.run(&feeds).unwrap(), whole.run(&feeds).unwrap());
    assert_eq!(a[0].shape, vec![5, 10]);
    let worst = a[0].to_vec::<f32>().iter().zip(b[0].to_vec::<f32>()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-6, "worst |split - whole| = {worst:e}");
    // A batch of 1 and a fixed-shape model run whole.
    let one = [Feed::new("image", DType::Float32, &[1, 3, 32, 32], f32s(&data[..3 * 32 * 32]))];
    assert_eq!(split.run(&one).unwrap()[0].to_vec::<f32>(), whole.run(&one).unwrap()[0].to_vec::<f32>());
    assert!(!with(2, "add.onnx").splits_batches());
    // Elementwise ops only (a symbolic batch, items independent): too little work to hand off.
    assert!(!with(2, "dtypes.onnx").splits_batches());
    // The encoders split too: their ops work sentence by sentence.
    assert!(with(2, "encoder-minilm.onnx").splits_batches());
}

#[test]
fn silero_session_carries_state() {
    // The file holds a 16 kHz and an 8 kHz graph behind an If on `sr`: fixing `sr` and the
    // shapes at load keeps only the branch taken (tract alone would analyse both and fail).
    let sr = 16000i64.to_le_bytes();
    let fixed = |dims: &[usize]| InputSpec { dtype: None, shape: Some(dims.iter().map(|&d| Dim::Fixed(d)).collect()) };
    let opts = LoadOptions {
        inputs: vec![("input".into(), fixed(&[1, 576])), ("state".into(), fixed(&[2, 1, 128]))],
        constants: vec![Feed::new("sr", DType::Int64, &[], &sr)],
        threads: Some(1),
        ..Default::default()
    };
    let model = Arc::new(TractModel::load(ModelSource::Path(&root().join("models/silero_vad_v5.onnx")), &opts).unwrap());
    assert_eq!(model.inputs().iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["input", "state"]);
    let session = TractSession::new(Arc::clone(&model), SessionOptions::default()).unwrap();
    assert_eq!(session.carried(), vec![("stateN".to_string(), "state".to_string())]);
    let x: Vec<f32> = (0..576).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
    let feeds = [Feed::new("input", DType::Float32, &[1, 576], f32s(&x))];
    let p1 = session.run(&feeds).unwrap()[0].to_vec::<f32>()[0];
    let p2 = session.run(&feeds).unwrap()[0].to_vec::<f32>()[0];
    // Same input, different state: a different probability, unless the state was not carried.
    assert_ne!(p1, p2);
    session.reset();
    assert_eq!(session.run(&feeds).unwrap()[0].to_vec::<f32>()[0], p1);
}

#[test]
fn silero_with_its_sample_rate_given_at_run_time_is_planned_per_value_and_matches_the_fixed_load() {
    // Its If on `sr` cannot be planned without sr's value: the model is planned per shape and
    // per value of that small integer input at the first run, and gives what fixing sr at load
    // gives.
    let path = root().join("models/silero_vad_v5.onnx");
    let free = TractModel::load(ModelSource::Path(&path), &LoadOptions::default()).unwrap();
    assert_eq!(free.planning(), Planning::PerShape);
    let sr = 16000i64.to_le_bytes();
    let constants = vec![Feed::new("sr", DType::Int64, &[], &sr)];
    let fixed = TractModel::load(ModelSource::Path(&path), &LoadOptions { constants, ..Default::default() }).unwrap();
    let x: Vec<f32> = (0..576).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
    let state = vec![0.1f32; 256];
    let feeds = || {
        vec![
            Feed::new("input", DType::Float32, &[1, 576], f32s(&x)),
            Feed::new("state", DType::Float32, &[2, 1, 128], f32s(&state)),
        ]
    };
    let mut with_sr = feeds();
    with_sr.push(Feed::new("sr", DType::Int64, &[], &sr));
    let a = free.run(&with_sr).unwrap();
    let b = fixed.run(&feeds()).unwrap();
    assert_eq!(a[0].to_vec::<f32>(), b[0].to_vec::<f32>());
    assert_eq!(a[1].to_vec::<f32>(), b[1].to_vec::<f32>());
    assert_eq!(free.shape_plans(), 1);
}

#[test]
fn profile_times_every_evaluated_node_and_rejects_bad_feeds() {
    let m = load("cnn.onnx");
    let image: Vec<f32> = (0..3 * 32 * 32).map(|i| (i as f32 * 0.01).sin()).collect();
    let shape = [1usize, 3, 32, 32];
    let feeds = [Feed::new("image", DType::Float32, &shape, f32s(&image))];
    let costs = m.profile(&feeds, 3).unwrap();
    // The CNN's two convolutions are in the plan under their ONNX names, and cost something.
    for name in ["c1", "c2"] {
        let c = costs.iter().find(|c| c.node == name).unwrap_or_else(|| panic!("no {name} in {costs:?}"));
        assert!(c.median.as_nanos() > 0, "{c:?}");
    }
    let mut names: Vec<&str> = costs.iter().map(|c| c.node.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), costs.len(), "each node once: {costs:?}");
    let bad = [Feed::new("image", DType::Float32, &[1, 3, 32], f32s(&image))];
    assert_eq!(m.profile(&bad, 1).unwrap_err().code, ErrorCode::InputShape);
}

/// Token ids index the embedding tables: an id past a table is an input error naming the input
/// and the table (not a panic inside the engine), in a run and in a batch (naming the request);
/// negative ids count from the end, as ONNX says; the model stays usable.
#[test]
fn ids_past_their_table_are_input_value_errors() {
    let m = load("encoder.onnx"); // vocabulary 1000, 2 token types
    let i64s = |v: &[i64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let (ok_ids, ones, zeros) = (i64s(&[5, 999, -1, 7]), i64s(&[1; 4]), i64s(&[0; 4]));
    fn bert<'a>(ids: &'a [u8], mask: &'a [u8], types: &'a [u8]) -> Vec<Feed<'a>> {
        let shape: &[usize] = &[1, 4];
        vec![
            Feed::new("input_ids", DType::Int64, shape, ids),
            Feed::new("attention_mask", DType::Int64, shape, mask),
            Feed::new("token_type_ids", DType::Int64, shape, types),
        ]
    }
    let feeds = |ids, types| bert(ids, &ones, types);
    // These byte buffers outlive the feeds below.
    let (big_id, big_type, low_id) = (
        i64s(&[5, 1000, 0, 1]),
        i64s(&[0, 0, 2, 0]),
        i64s(&[-1001, 0, 0, 0]),
    );
    let cases: [(&[u8], &[u8], &str); 3] = [
        (
            &big_id,
            &zeros,
            "input 'input_ids': value 1000 at flat position 1 is out of range",
        ),
        (
            &ok_ids,
            &big_type,
            "input 'token_type_ids': value 2 at flat position 2 is out of range",
        ),
        (
            &low_id,
            &zeros,
            "input 'input_ids': value -1001 at flat position 0",
        ),
    ];
    let good = m
        .run(&feeds(&ok_ids, &zeros))
        .expect("ids in range, a negative one among them");
    for (ids, types, text) in cases {
        let e = m.run(&feeds(ids, types)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InputValue, "{e}");
        assert!(
            e.message.contains(text),
            "{} does not contain {text}",
            e.message
        );
        let e = m
            .run_batch(&[feeds(&ok_ids, &zeros), feeds(ids, types)])
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InputValue, "{e}");
        assert!(e.message.starts_with("request 1: "), "{}", e.message);
        let again = m.run(&feeds(&ok_ids, &zeros)).expect("still usable");
        assert_eq!(again[0].to_vec::<f32>(), good[0].to_vec::<f32>());
    }
}

/// A run, a batch and a session step stop with ERR_ABORTED once their `Cancel` is set: before
/// the first op when set before the call, within one op when set while the run is under way;
/// the model and the session keep working after.
#[test]
fn cancelled_runs_stop_with_aborted_and_the_model_keeps_working() {
    use oxinfer_core::Cancel;
    use std::sync::atomic::{AtomicBool, Ordering};

    let opts = LoadOptions { threads: Some(1), ..Default::default() };
    let m = Arc::new(TractModel::load(ModelSource::Path(&fixture("encoder-minilm.onnx")), &opts).unwrap());
    let (rows, seq) = (4usize, 128usize);
    let i64s = |v: &[i64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let ids = i64s(&(0..rows * seq).map(|i| 1 + (i as i64 * 7919) % 30000).collect::<Vec<_>>());
    let (ones, zeros) = (i64s(&vec![1; rows * seq]), i64s(&vec![0; rows * seq]));
    let shape = [rows, seq];
    let feeds = vec![
        Feed::new("input_ids", DType::Int64, &shape, &ids),
        Feed::new("attention_mask", DType::Int64, &shape, &ones),
        Feed::new("token_type_ids", DType::Int64, &shape, &zeros),
    ];
    let set = Arc::new(AtomicBool::new(true));
    let e = m.run_cancellable(&feeds, &Cancel::on(Arc::clone(&set))).unwrap_err();
    assert_eq!(e.code, ErrorCode::Aborted, "{e}");
    let e = m.run_batch_cancellable(&[feeds.clone()], &Cancel::on(Arc::clone(&set))).unwrap_err();
    assert_eq!(e.code, ErrorCode::Aborted, "{e}");

    // Set from another thread ~10 ms into a run of ~100 ms (4 sentences of 128 tokens on one
    // thread): the run stops at its next op. Had it ignored the flag, it would return Ok.
    let flag = Arc::new(AtomicBool::new(false));
    let setter = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            flag.store(true, Ordering::SeqCst);
        })
    };
    let e = m.run_cancellable(&feeds, &Cancel::on(Arc::clone(&flag))).unwrap_err();
    setter.join().unwrap();
    assert_eq!(e.code, ErrorCode::Aborted, "{e}");

    // Not cancelled: the same outputs as a plain run.
    let plain = m.run(&feeds).unwrap()[0].to_vec::<f32>();
    let unset = m.run_cancellable(&feeds, &Cancel::on(Arc::new(AtomicBool::new(false)))).unwrap()[0].to_vec::<f32>();
    assert_eq!(plain, unset);

    let session = TractSession::new(Arc::clone(&m), SessionOptions::default()).unwrap();
    let e = session.run_cancellable(&feeds, &Cancel::on(set)).unwrap_err();
    assert_eq!(e.code, ErrorCode::Aborted, "{e}");
    assert_eq!(session.run(&feeds).unwrap()[0].to_vec::<f32>(), plain);
}
