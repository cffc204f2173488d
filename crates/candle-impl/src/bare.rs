//! candle's bare training loop on the CPU, for measurements (see `common::bare`), with each
//! layer's forward and backward time measured alone.

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor, Var};
use candle_nn::{Module, Optimizer};
use common::bare::{BareLoop, OpTime};
use common::harness::LEARNING_RATE;
use common::{Mnist, ModelKind, TrainError, Weights};

use super::model::{Net, Stage};
use crate::backend_error;
use crate::device::DeviceSplit;
use crate::model::Pool;
use crate::trainer::adam;
use crate::weights::build;

/// A model, its optimiser and the training split on the CPU, as a bare loop would hold them.
pub struct Bare {
    net: Net,
    opt: candle_nn::AdamW,
    train: DeviceSplit,
}

impl Bare {
    pub fn new(model: ModelKind, pool: Pool, data: &Mnist) -> Result<Self, TrainError> {
        let device = Device::Cpu;
        let init = Weights::init(&model.spec(), 0);
        let (varmap, net) = build(model, &init, &device, pool)?;
        let opt = adam(&varmap, LEARNING_RATE)?;
        let train = DeviceSplit::upload(&data.train, &device).map_err(backend_error)?;
        Ok(Self { net, opt, train })
    }

    fn batch(&self, idx: &[u32]) -> candle_core::Result<(Tensor, Tensor)> {
        let idx = Tensor::from_slice(idx, idx.len(), &Device::Cpu)?;
        Ok((
            self.train.images.index_select(&idx, 0)?,
            self.train.labels.index_select(&idx, 0)?,
        ))
    }

    fn step_inner(&mut self, idx: &[u32]) -> candle_core::Result<()> {
        let (xs, ys) = self.batch(idx)?;
        let loss = candle_nn::loss::cross_entropy(&self.net.forward(&xs)?, &ys)?;
        self.opt.backward_step(&loss)
    }

    fn timed_step_inner(&mut self, idx: &[u32]) -> candle_core::Result<[Duration; 3]> {
        let (xs, ys) = self.batch(idx)?;
        let a = Instant::now();
        let loss = candle_nn::loss::cross_entropy(&self.net.forward(&xs)?, &ys)?;
        let b = Instant::now();
        let grads = loss.backward()?;
        let c = Instant::now();
        self.opt.step(&grads)?;
        let d = Instant::now();
        Ok([b - a, c - b, d - c])
    }

    fn op_times_inner(&self, idx: &[u32], reps: usize) -> candle_core::Result<Vec<OpTime>> {
        let mean = |f: &mut dyn FnMut() -> candle_core::Result<()>| {
            f()?; // warm-up
            let start = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            Ok::<_, candle_core::Error>(start.elapsed() / reps as u32)
        };
        // A layer's output `y` is turned into a scalar with a fixed random `g` as
        // `flatten(y) · g`, a matmul whose backward pass hands the layer a contiguous gradient
        // and costs little; that probe is timed on its own and taken off. (`(y * g).sum()`
        // would not do: candle's backward of a sum multiplies by a stride-0 broadcast, which
        // takes its slow strided path and costs more than most layers.)
        let probe = |y: &Tensor, g: &Tensor| y.flatten_all()?.unsqueeze(0)?.matmul(g);
        let probe_backward = |y: &Tensor, g: &Tensor| {
            let v = Var::from_tensor(&y.detach())?;
            let loss = probe(v.as_tensor(), g)?;
            mean(&mut || loss.backward().map(drop))
        };
        let (xs, ys) = self.batch(idx)?;
        let mut out = Vec::new();
        let mut x = xs;
        for (i, op) in self.net.stages().iter().enumerate() {
            // The images need no gradient; every later activation does.
            let input = if i == 0 {
                x.clone()
            } else {
                Var::from_tensor(&x.detach())?.as_tensor().clone()
            };
            let forward = mean(&mut || input.apply(op).map(drop))?;
            let y = input.apply(op)?;
            let g = Tensor::randn(0f32, 1f32, (y.elem_count(), 1), y.device())?;
            let loss = probe(&y, &g)?;
            let with_probe = mean(&mut || loss.backward().map(drop))?;
            let backward = with_probe.saturating_sub(probe_backward(&y, &g)?);
            let parts = match op {
                Stage::Conv(_, conv) => conv_parts(conv, &input, &y, &g, &mean)?,
                _ => Vec::new(),
            };
            out.push(OpTime {
                name: format!("{} {:?} -> {:?}", op.name(), x.dims(), y.dims()),
                forward,
                backward,
                parts,
            });
            x = y.detach();
        }
        let logits = Var::from_tensor(&x)?;
        let forward =
            mean(&mut || candle_nn::loss::cross_entropy(logits.as_tensor(), &ys).map(drop))?;
        let loss = candle_nn::loss::cross_entropy(logits.as_tensor(), &ys)?;
        let backward = mean(&mut || loss.backward().map(drop))?;
        out.push(OpTime {
            name: format!("cross_entropy {:?}", x.dims()),
            forward,
            backward,
            parts: Vec::new(),
        });
        Ok(out)
    }
}

/// Times a closure: its mean over a number of repetitions after a warm-up.
type Timer<'a> =
    dyn Fn(&mut dyn FnMut() -> candle_core::Result<()>) -> candle_core::Result<Duration> + 'a;

/// The three parts of a convolution's backward pass, each timed by `mean`: the input's gradient
/// (a transposed convolution), the kernel's (a convolution of the input with the gradient) and
/// the bias's (a sum), for the layer's output gradient `g` (shaped as `y`).
fn conv_parts(
    conv: &candle_nn::Conv2d,
    input: &Tensor,
    y: &Tensor,
    g: &Tensor,
    mean: &Timer<'_>,
) -> candle_core::Result<Vec<(&'static str, Duration)>> {
    let g = g.reshape(y.shape())?;
    let kernel = conv.weight();
    let padding = conv.config().padding;
    let k = kernel.dim(2)?;
    let out_padding = input.dim(2)? - ((g.dim(2)? - 1) + (k - 1) + 1 - 2 * padding);
    Ok(vec![
        (
            "conv_transpose2d (input gradient)",
            mean(&mut || {
                g.conv_transpose2d(kernel, padding, out_padding, 1, 1)
                    .map(drop)
            })?,
        ),
        (
            "conv2d (kernel gradient)",
            mean(&mut || {
                input
                    .transpose(0, 1)?
                    .conv2d(&g.transpose(0, 1)?, padding, 1, 1, 1)?
                    .transpose(0, 1)
                    .map(drop)
            })?,
        ),
        (
            "sum over batch and space (bias gradient)",
            mean(&mut || g.sum_keepdim(&[0usize, 2, 3][..]).map(drop))?,
        ),
    ])
}

impl BareLoop for Bare {
    fn step(&mut self, idx: &[u32]) -> Result<(), TrainError> {
        self.step_inner(idx).map_err(backend_error)
    }

    fn timed_step(&mut self, idx: &[u32]) -> Result<[Duration; 3], TrainError> {
        self.timed_step_inner(idx).map_err(backend_error)
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        Ok(())
    }

    /// Each layer of a training step on its own, on the activations a real batch gives it:
    /// the mean time of its forward pass and of its part of the backward pass over `reps`
    /// repetitions, then the same for the loss. For convolutions, `parts` times the two
    /// operations candle's backward pass calls for them, alone.
    fn op_times(&self, idx: &[u32], reps: usize) -> Result<Vec<OpTime>, TrainError> {
        self.op_times_inner(idx, reps.max(1)).map_err(backend_error)
    }
}
