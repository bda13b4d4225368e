//! The activation-memory estimate (`pretrain::memory`) against the heap a real training step
//! takes: a counting global allocator around one forward and backward pass. CI runs it on
//! `flex`; `cargo test -p electra-stages --features ndarray --test memory` checks it against
//! burn's composed operations, what the GPU backends compute (by hand: it builds another
//! backend; measured 2026-12-08: 0.91–1.00 of the estimate).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::backend::Autodiff;
use electra_stages::model::layers::{Dropout, Init};
use electra_stages::pretrain::bert::Bert;
use electra_stages::pretrain::electra::{Electra, ElectraShape};
use electra_stages::pretrain::masking::{mask_batch, MaskingOptions, Replacement};
use electra_stages::pretrain::memory;
use electra_stages::pretrain::objective::PretrainingModel;
use electra_stages::pretrain::params::PretrainParams;
use electra_stages::pretrain_data::Batch;
use electra_stages::tokenizer::SpecialIds;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[cfg(not(feature = "ndarray"))]
type B = Autodiff<burn::backend::Flex>;
#[cfg(feature = "ndarray")]
type B = Autodiff<burn::backend::NdArray>;

fn batch(rows: usize, seq: usize, vocab: u32) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(rows as u64);
    Batch {
        batch_size: rows,
        seq_len: seq,
        input_ids: (0..rows * seq)
            .map(|_| rng.random_range(5..vocab))
            .collect(),
        segment_ids: vec![0; rows * seq],
        lengths: vec![seq; rows],
    }
}

/// Peak heap growth of one forward and backward pass of `model` over `rows × seq`.
fn measured<M: PretrainingModel<B>>(model: &M, rows: usize, seq: usize, vocab: usize) -> usize {
    let options = MaskingOptions {
        mask_prob: 0.15,
        max_predictions: MaskingOptions::max_predictions_for(0.15, seq),
        replacement: Replacement::Electra,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let masked = mask_batch(
        &batch(rows, seq, vocab as u32),
        SpecialIds::LEADING,
        vocab,
        &options,
        &mut rng,
    );
    let device = Default::default();
    let before = IN_USE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let output = model.step(&masked, &mut Dropout::train(0.1, 1, 0), &device);
    let grads = output.loss.backward();
    let peak = PEAK.load(Ordering::SeqCst);
    drop(grads);
    peak - before
}

/// Measured activation bytes per example (the growth of the peak from 4 to 8 examples) over
/// the estimate's, for `objective` at `preset` size and `seq` tokens.
fn measured_over_estimate(objective: &str, preset: &str, seq: usize) -> f64 {
    let vocab = 2000;
    let params = PretrainParams::parse(&json!({
        "objective": objective,
        "data": "/unused",
        "model": {"preset": preset},
        "steps": 1,
    }))
    .unwrap();
    let estimate = memory::estimate(&params, vocab, seq);
    let encoder = params.encoder(vocab);
    let device = Default::default();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut init = Init::<B> {
        device: &device,
        rng: &mut rng,
    };
    let mut peak = |rows| match objective {
        "bert" => measured(&Bert::new(&mut init, &encoder), rows, seq, vocab),
        _ => measured(
            &Electra::new(&mut init, ElectraShape::paper(encoder), None),
            rows,
            seq,
            vocab,
        ),
    };
    let per_example = (peak(8) as f64 - peak(4) as f64) / 4.0;
    per_example / estimate.activation_bytes_per_example
}

#[test]
fn the_activation_estimate_bounds_a_real_steps_heap() {
    // With burn's composed operations (the `ndarray` backend: what the GPU backends compute)
    // the measurement is 85–100% of the estimate; `flex`'s fused kernels keep less (measured
    // 65–77%), and the estimate stays above them.
    let (low, high) = if cfg!(feature = "ndarray") {
        (0.85, 1.0)
    } else {
        (0.5, 1.0)
    };
    for objective in ["bert", "electra"] {
        for preset in ["tiny", "mini"] {
            for seq in [64, 128] {
                let ratio = measured_over_estimate(objective, preset, seq);
                assert!(
                    (low..=high).contains(&ratio),
                    "{objective} {preset} at {seq} tokens: measured {ratio:.3} of the estimate"
                );
            }
        }
    }
}
