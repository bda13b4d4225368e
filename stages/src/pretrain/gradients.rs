//! One step's gradients over its whole batch, computed in parts that fit a device: the batch is
//! shared out among data-parallel replicas (one device each, run as parallel tasks of the
//! stage's thread pool), and each
//! replica's share is computed in micro-batches (gradient accumulation).
//!
//! Every part's loss is its part of the whole batch's: each mean it takes is divided by the
//! whole batch's count, not its own ([`MaskedBatch::split`]), so the plain **sum** of the
//! parts' gradients is the whole batch's gradient (a mean of per-part means would weigh the
//! positions of a part with fewer masked tokens more). Dropout masks are keyed by each row's
//! place in the whole batch ([`Dropout::train`]) and a generator's replacements by each masked
//! position's draw ([`MaskedBatch::replacement_draws`]), so a part draws exactly what its rows
//! draw in one pass. What the number of parts changes is the order of floating-point sums only.
//!
//! The replicas' gradients are reduced onto the first device, in replica order, and the one
//! optimiser there makes the step (the next step's replicas start from its weights). burn's
//! `collective` crate is not used for the reduction: on replicas that share one device (every
//! `flex` replica) its tree orders the peers by device id and then by a hash map's order,
//! which varies from run to run, so with three replicas or more the sum's rounding would not
//! repeat; a fixed order costs nothing at this reduction's size.

use std::ops::Range;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::backend::DeviceOps;
use rayon::prelude::*;

use super::masking::MaskedBatch;
use super::objective::PretrainingModel;
use super::stats::StepStats;
use crate::model::layers::Dropout;

/// A step's dropout: the probability and the seed its masks are drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutDraws {
    /// Drop probability.
    pub p: f64,
    /// The step's dropout seed.
    pub seed: u64,
}

/// Where a step's batch is computed: one device per replica, in micro-batches of
/// `micro_batch` rows.
#[derive(Debug, Clone)]
pub struct Replicas<D> {
    devices: Vec<D>,
    micro_batch: usize,
}

impl<D: DeviceOps> Replicas<D> {
    /// `count` replicas: on `first`, then on the devices of its kind numbered after it (all on
    /// `first` for a backend with one device, such as `flex`), each computing micro-batches of
    /// `micro_batch` rows.
    pub fn new(first: &D, count: usize, micro_batch: usize) -> Self {
        let id = first.to_id();
        let others = (1..count.max(1)).map(|k| {
            let mut device_id = id;
            device_id.index_id += k as u16;
            D::from_id(device_id)
        });
        let devices = std::iter::once(first.clone()).chain(others).collect();
        Replicas {
            devices,
            micro_batch,
        }
    }

    /// The gradients of `model` over `masked` (on the first device) and the step's
    /// measurements.
    pub fn gradients<B, M>(
        &self,
        model: &M,
        masked: &MaskedBatch,
        dropout: DropoutDraws,
    ) -> (GradientsParams, StepStats)
    where
        B: AutodiffBackend<Device = D>,
        M: PretrainingModel<B> + AutodiffModule<B>,
    {
        let first = &self.devices[0];
        if self.devices.len() == 1 {
            return self.accumulate(model, masked, 0, dropout, first);
        }
        // Each replica a model of its own (fresh autodiff leaves), even on a shared device, so
        // that no two threads record onto one graph; run as tasks of the stage's thread pool.
        let work: Vec<(M, MaskedBatch, usize, &D)> = shares(masked.batch_size, self.devices.len())
            .into_iter()
            .zip(&self.devices)
            .map(|(rows, device)| {
                let replica = M::from_inner(model.valid()).fork(device);
                (replica, masked.rows(rows.clone()), rows.start, device)
            })
            .collect();
        let results: Vec<(GradientsParams, StepStats)> = work
            .into_par_iter()
            .map(|(replica, share, first_row, device)| {
                self.accumulate(&replica, &share, first_row, dropout, device)
            })
            .collect();
        let mut sum = GradientsAccumulator::<M>::new();
        let mut parts = Vec::with_capacity(results.len());
        for (grads, stats) in results {
            sum.accumulate(model, grads.to_device(first, model));
            parts.push(stats);
        }
        (sum.grads(), StepStats::merge(parts))
    }

    /// The summed gradients of `model` over `share` (rows from `first_row` on of the whole
    /// batch) and its measurements, one micro-batch at a time on `device`.
    fn accumulate<B, M>(
        &self,
        model: &M,
        share: &MaskedBatch,
        first_row: usize,
        dropout: DropoutDraws,
        device: &D,
    ) -> (GradientsParams, StepStats)
    where
        B: AutodiffBackend<Device = D>,
        M: PretrainingModel<B> + AutodiffModule<B>,
    {
        let mut sum = GradientsAccumulator::<M>::new();
        let mut parts = Vec::new();
        let mut row = first_row;
        for part in share.split(self.micro_batch) {
            let mut masks = Dropout::train(dropout.p, dropout.seed, row);
            row += part.batch_size;
            let output = model.step(&part, &mut masks, device);
            sum.accumulate(
                model,
                GradientsParams::from_grads(output.loss.backward(), model),
            );
            parts.push(output.stats);
        }
        (sum.grads(), StepStats::merge(parts))
    }
}

/// `rows` rows shared out among `replicas` in contiguous runs whose sizes differ by at most
/// one, the larger first.
fn shares(rows: usize, replicas: usize) -> Vec<Range<usize>> {
    let (each, more) = (rows / replicas, rows % replicas);
    let mut start = 0;
    (0..replicas)
        .map(|k| {
            let len = each + usize::from(k < more);
            let share = start..start + len;
            start += len;
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_rows_in_order_with_sizes_within_one() {
        assert_eq!(shares(32, 2), vec![0..16, 16..32]);
        assert_eq!(shares(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(shares(2, 3), vec![0..1, 1..2, 2..2]);
    }
}
