//! LeNet2 and LeNet3 on tch 0.24 (libtorch 2.11), on the CPU and on CUDA.
//!
//! The networks are tch structs (`model.rs`) whose variables are created under the shared PyTorch
//! names (`conv1.weight`, ...), so the shared initial weights are copied in by name. Both splits
//! are uploaded once, already normalised; a step gathers its batch on the device with
//! `index_select` on that epoch's order, and the loss and correct counts are summed on the device
//! and read once per epoch, so nothing in the step loop waits for the device.

mod bare;
pub mod model;
pub mod tuned;

use common::bare::BareLoop;
use common::framework::{Colour, CudaBuild, Framework, FrameworkDefaults};
use common::harness::{
    BackendInfo, DeviceKind, DeviceRequest, Profile, RunSpec, Totals, Trainer, Tuning,
};
use common::mnist::{Mnist, Split, SplitKind, IMAGE_SIDE};
use common::spec::ModelKind;
use common::weights::{ParamTensor, Weights};
use common::TrainError;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const FRAMEWORK: &str = "tch";
/// The libtorch version that tch 0.24 is built for.
pub const LIBTORCH_VERSION: &str = "2.11.0";

fn backend_error(e: tch::TchError) -> TrainError {
    TrainError::Backend {
        framework: FRAMEWORK,
        message: e.to_string(),
    }
}

/// Whether libtorch's CUDA part (libtorch_cuda) is loaded in this process. (`tch::utils::has_cuda`
/// cannot tell: it is false on a machine without a GPU even when the library is there.)
pub fn cuda_built() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| maps.contains("libtorch_cuda.so"))
        .unwrap_or_else(|_| tch::utils::has_cuda())
}

/// Whether a CUDA device can be used.
pub fn cuda_available() -> bool {
    tch::Cuda::is_available()
}

/// One split on the device: images `[n, 1, 28, 28]` f32, labels `[n]` i64.
struct DeviceSplit {
    images: Tensor,
    labels: Tensor,
}

impl DeviceSplit {
    fn upload(split: &Split, device: Device) -> Self {
        let n = split.len() as i64;
        let side = IMAGE_SIDE as i64;
        Self {
            images: Tensor::from_slice(&split.normalized_images())
                .reshape([n, 1, side, side])
                .to_device(device),
            labels: Tensor::from_slice(&split.labels_i64()).to_device(device),
        }
    }

    fn len(&self) -> i64 {
        self.labels.size()[0]
    }
}

/// The optimiser of a run: tch's own (`nn::Adam`, libtorch's C++ Adam), or in the tuned profile
/// libtorch's fused Adam through the shim.
enum Optim {
    Idiomatic(nn::Optimizer),
    Fused(tuned::FusedAdam),
}

impl Optim {
    /// Zeroes the gradients, runs backward from `loss`, and steps.
    fn backward_step(&mut self, loss: &Tensor) -> Result<(), TrainError> {
        match self {
            Optim::Idiomatic(opt) => {
                opt.backward_step(loss);
                Ok(())
            }
            Optim::Fused(opt) => {
                opt.zero_grad();
                loss.backward();
                opt.step()
            }
        }
    }
}

/// A tch training run.
pub struct TchTrainer {
    vs: nn::VarStore,
    net: Box<dyn Module>,
    opt: Optim,
    /// The tuned profile's CUDA graph of a full step.
    #[cfg(lenet_tch_graphs)]
    graphed: Option<tuned::Graphed>,
    device: Device,
    batch_size: i64,
    train: DeviceSplit,
    test: DeviceSplit,
    /// The tuned profile's settings, as applied.
    tuning: Vec<Tuning>,
}

fn pick_device(request: DeviceRequest) -> Result<Device, TrainError> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto => Ok(Device::cuda_if_available()),
        DeviceRequest::Cuda if cuda_available() => Ok(Device::Cuda(0)),
        DeviceRequest::Cuda if !cuda_built() => Err(TrainError::DeviceUnavailable(
            "tch: CUDA was asked for, but the libtorch this binary loaded has no CUDA support \
             (libtorch_cuda is not loaded); build against a CUDA libtorch"
                .into(),
        )),
        DeviceRequest::Cuda => Err(TrainError::DeviceUnavailable(
            "tch: CUDA was asked for, but libtorch (with CUDA) finds no CUDA device on this machine"
                .into(),
        )),
    }
}

fn to_tensor(t: &ParamTensor) -> Tensor {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&t.data).reshape(shape)
}

impl TchTrainer {
    /// Builds the model on the device that `spec` asks for, imports `init`, uploads both splits.
    pub fn new(spec: &RunSpec, data: &Mnist, init: &Weights) -> Result<Self, TrainError> {
        if let Some(threads) = spec.threads {
            tch::set_num_threads(threads as i32);
        }
        let device = pick_device(spec.device)?;
        let tuned = spec.profile == Profile::Tuned;
        let graph_steps = if tuned {
            let value = std::env::var(tuned::GRAPH_STEPS_VAR).ok();
            tuned::graph_steps(value.as_deref())?
        } else {
            tuned::DEFAULT_GRAPH_STEPS
        };
        let tuning = if tuned {
            tune(device, graph_steps)
        } else {
            Vec::new()
        };
        let applied = |setting: &str| tuning.iter().any(|t| t.setting == setting && t.applied);
        init.check(&spec.model.spec())?;
        let mut vs = nn::VarStore::new(device);
        let net = model::net(spec.model, &vs.root());
        load_weights(&mut vs, init)?;
        let opt = if applied(FUSED_ADAM) {
            Optim::Fused(tuned::FusedAdam::new(&vs, spec.learning_rate))
        } else {
            Optim::Idiomatic(adam(&vs, spec.learning_rate)?)
        };
        let train = DeviceSplit::upload(&data.train, device);
        #[cfg(lenet_tch_graphs)]
        let graphed = if applied(CUDA_GRAPH) {
            Some(tuned::Graphed::new(
                spec.batch_size as i64,
                graph_steps,
                train.len(),
                device,
            )?)
        } else {
            None
        };
        Ok(Self {
            net,
            opt,
            #[cfg(lenet_tch_graphs)]
            graphed,
            device,
            batch_size: spec.batch_size as i64,
            train,
            test: DeviceSplit::upload(&data.test, device),
            vs,
            tuning,
        })
    }

    fn split(&self, split: SplitKind) -> &DeviceSplit {
        match split {
            SplitKind::Train => &self.train,
            SplitKind::Test => &self.test,
        }
    }
}

const FUSED_ADAM: &str = "fused Adam";
const CUDNN_BENCHMARK: &str = "cudnn.benchmark";
const CUDA_GRAPH: &str = "CUDA graph";

/// Applies the tuned profile's settings for `device` and says what they were.
fn tune(device: Device, graph_steps: i64) -> Vec<Tuning> {
    let graph_value = if graph_steps == 1 {
        "whole step".to_string()
    } else {
        format!("{graph_steps} whole steps per graph")
    };
    let mut out = Vec::new();
    out.push(if tuned::fused_adam_built() {
        Tuning::applied(
            FUSED_ADAM,
            "at::_fused_adam_",
            "libtorch's fused kernel (PyTorch's Adam(fused=True)) through this crate's C++ shim, \
             step counts on the device, gradients zeroed in place",
        )
    } else {
        Tuning::fell_back(
            FUSED_ADAM,
            "at::_fused_adam_",
            "this build has no C++ shim (libtorch's headers were missing when it was built)",
        )
    });
    if !device.is_cuda() {
        out.push(Tuning::fell_back(
            CUDNN_BENCHMARK,
            "true",
            "the run is on the CPU: cuDNN is CUDA's",
        ));
        out.push(Tuning::fell_back(
            CUDA_GRAPH,
            &graph_value,
            "the run is on the CPU: no CUDA graphs there",
        ));
        return out;
    }
    tch::Cuda::cudnn_set_benchmark(true);
    out.push(Tuning::applied(
        CUDNN_BENCHMARK,
        "true",
        "cuDNN times its convolution algorithms once per shape and keeps the fastest",
    ));
    out.push(if !tuned::graphs_built() {
        Tuning::fell_back(
            CUDA_GRAPH,
            &graph_value,
            "this build has no CUDA graph shim (no CUDA libtorch or CUDA headers when it was built)",
        )
    } else if !tuned::fused_adam_built() {
        Tuning::fell_back(CUDA_GRAPH, &graph_value, "it needs the fused Adam")
    } else {
        Tuning::applied(
            CUDA_GRAPH,
            &graph_value,
            &format!(
                "gather, forward, loss, backward, fused Adam and the sums of {} captured once \
                 (after 3 eager steps on the capture's side stream) through libtorch's \
                 at::cuda::CUDAGraph and replayed, each replay's indices copied in at once; \
                 {} ({} sets the steps per graph)",
                if graph_steps == 1 {
                    "a full batch".to_string()
                } else {
                    format!("{graph_steps} consecutive full batches")
                },
                if graph_steps == 1 {
                    "a shorter last batch runs eagerly"
                } else {
                    "full batches too few for a replay and a shorter last batch run eagerly"
                },
                tuned::GRAPH_STEPS_VAR
            ),
        )
    });
    out
}

/// The recipe's Adam (betas 0.9/0.999, eps 1e-8, no weight decay) over the variables of `vs`.
fn adam(vs: &nn::VarStore, learning_rate: f64) -> Result<nn::Optimizer, TrainError> {
    nn::Adam {
        beta1: 0.9,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(vs, learning_rate)
    .map_err(backend_error)
}

fn load_weights(vs: &mut nn::VarStore, weights: &Weights) -> Result<(), TrainError> {
    let vars = vs.variables();
    if vars.len() != weights.tensors.len() {
        return Err(TrainError::Weights(format!(
            "the tch model has {} tensors, the weights {}",
            vars.len(),
            weights.tensors.len()
        )));
    }
    tch::no_grad(|| {
        for (name, mut var) in vars {
            let t = weights.get(&name, &shape_of(&var))?;
            var.copy_(&to_tensor(t).to_device(var.device()));
        }
        Ok(())
    })
}

/// The variables of `vs` in PyTorch's names and layouts (which are tch's own).
fn export(vs: &nn::VarStore) -> Result<Weights, TrainError> {
    let mut out = Weights::default();
    for (name, var) in vs.variables() {
        let shape = shape_of(&var);
        let data = Vec::<f32>::try_from(var.detach().to_device(Device::Cpu).flatten(0, -1))
            .map_err(backend_error)?;
        out.tensors.insert(name, ParamTensor { shape, data });
    }
    Ok(out)
}

/// The initial weights tch's own layers draw (`nn::conv2d` and `nn::linear` with their default
/// configurations), from libtorch's generator seeded with `seed`.
fn native_weights(model: ModelKind, seed: u64) -> Result<Weights, TrainError> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = model::net(model, &vs.root());
    export(&vs)
}

fn shape_of(t: &Tensor) -> Vec<usize> {
    t.size().iter().map(|&d| d as usize).collect()
}

/// The predicted class of each row compared with the labels, as a count (on the device).
fn correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.argmax(-1, false).eq_tensor(labels).sum(Kind::Int64)
}

fn read_totals(loss_sum: &Tensor, correct: &Tensor, examples: i64) -> Result<Totals, TrainError> {
    Ok(Totals {
        loss_sum: f64::try_from(loss_sum).map_err(backend_error)?,
        correct: i64::try_from(correct).map_err(backend_error)? as u64,
        examples: examples as u64,
        first_nonfinite: None,
    })
}

/// The training step of `idx`, eager or captured: gather, forward, loss, backward and the
/// optimiser; returns the (detached) mean loss and the correct count, on the device.
fn train_step(
    net: &dyn Module,
    opt: &mut Optim,
    train: &DeviceSplit,
    idx: &Tensor,
) -> Result<(Tensor, Tensor), TrainError> {
    let xs = train.images.index_select(0, idx); // [batch, 1, 28, 28]
    let ys = train.labels.index_select(0, idx); // [batch]
    let logits = net.forward(&xs); // [batch, 10]
    let loss = logits.cross_entropy_for_logits(&ys);
    opt.backward_step(&loss)?;
    let hits = tch::no_grad(|| correct(&logits, &ys));
    Ok((loss.detach(), hits))
}

/// One eager step of `idx` (`len` examples): the idiomatic loop's body.
#[allow(clippy::too_many_arguments)]
fn eager_step(
    net: &dyn Module,
    opt: &mut Optim,
    train: &DeviceSplit,
    idx: &Tensor,
    len: i64,
    loss_sum: &mut Tensor,
    hits: &mut Tensor,
    losses: &mut Vec<Tensor>,
) -> Result<(), TrainError> {
    let (loss, correct) = train_step(net, opt, train, idx)?;
    tch::no_grad(|| {
        *loss_sum += &loss * len as f64;
        *hits += correct;
    });
    losses.push(loss);
    Ok(())
}

impl TchTrainer {
    /// The next steps from `start` in `order` (`remaining` examples left) through the CUDA graph,
    /// capturing it first if this is the first replay; the number of steps replayed, 0 when the
    /// next step is not for the graph (no graph, a warm-up step, too few full batches left).
    #[cfg(lenet_tch_graphs)]
    fn replay_steps(
        &mut self,
        order: &Tensor,
        start: i64,
        remaining: i64,
    ) -> Result<i64, TrainError> {
        let device = self.device;
        let Self {
            graphed,
            net,
            opt,
            train,
            ..
        } = self;
        let Some(g) = graphed else {
            return Ok(0);
        };
        if !g.replays(remaining) {
            return Ok(0);
        }
        if !g.captured {
            if let Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
            let tuned::Graphed {
                capture,
                idx: static_idx,
                loss_sum,
                hits,
                losses,
                slot,
                batch,
                steps,
                ..
            } = g;
            let (batch, steps) = (*batch, *steps);
            capture.capture(|| {
                for k in 0..steps {
                    let idx = static_idx.narrow(0, k * batch, batch);
                    let (loss, correct) = train_step(net.as_ref(), opt, train, &idx)?;
                    tch::no_grad(|| -> Result<(), tch::TchError> {
                        let _ = loss_sum.f_add_(&(&loss * batch as f64))?;
                        let _ = hits.f_add_(&correct)?;
                        let _ = losses.f_index_copy_(0, &slot.view([1]), &loss.view([1]))?;
                        let _ = slot.f_add_scalar_(1)?;
                        Ok(())
                    })
                    .map_err(backend_error)?;
                }
                Ok(())
            })?;
            g.captured = true;
        }
        if !g.verified {
            return self.checked_replay(order, start);
        }
        let steps = g.steps;
        g.idx
            .f_copy_(&order.narrow(0, start, steps * g.batch))
            .map_err(backend_error)?;
        g.capture.replay()?;
        g.replayed.extend((0..steps).map(|_| true));
        Ok(steps)
    }

    /// The graph's first replay, checked: from a saved copy of everything its steps write, the
    /// graph replays them; the state is put back (copied into the same storage, which the graph
    /// reads) and the same steps run eagerly; `common::replay_check` compares the two (the mean
    /// of the steps' losses, and each parameter's update). The run goes on from the eager steps,
    /// counted as the graph's; where the replay disagreed, no replay follows. Returns the steps.
    #[cfg(lenet_tch_graphs)]
    fn checked_replay(&mut self, order: &Tensor, start: i64) -> Result<i64, TrainError> {
        use common::replay_check::{self, StepOutcome};
        let clock = std::time::Instant::now();
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let host = |named: &[(String, Tensor)]| -> Result<Vec<(String, Vec<f32>)>, TrainError> {
            named
                .iter()
                .map(|(name, t)| {
                    let values = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float))
                        .map_err(backend_error)?;
                    Ok((name.clone(), values))
                })
                .collect()
        };
        let floats = |t: &Tensor| -> Result<Vec<f32>, TrainError> {
            Vec::<f32>::try_from(t.to_kind(Kind::Float)).map_err(backend_error)
        };
        let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64;
        let Optim::Fused(fused) = &self.opt else {
            return Err(TrainError::Backend {
                framework: FRAMEWORK,
                message: "the CUDA graph needs the fused Adam".into(),
            });
        };
        let mut written = fused.state();
        let Some(g) = self.graphed.as_mut() else {
            return Ok(0);
        };
        let (steps, batch) = (g.steps, g.batch);
        let idx = order.narrow(0, start, steps * batch);
        written.extend([&g.loss_sum, &g.hits, &g.losses, &g.slot].map(Tensor::shallow_clone));
        let saved: Vec<Tensor> = tch::no_grad(|| written.iter().map(Tensor::copy).collect());
        let before = host(&named)?;
        let slot = i64::try_from(&g.slot).map_err(backend_error)?;
        g.idx.f_copy_(&idx).map_err(backend_error)?;
        g.capture.replay()?;
        let replayed = StepOutcome {
            loss: mean(&floats(&g.losses.narrow(0, slot, steps))?),
            tensors: host(&named)?,
        };
        tch::no_grad(|| -> Result<(), tch::TchError> {
            for (t, s) in written.iter_mut().zip(&saved) {
                t.f_copy_(s)?;
            }
            Ok(())
        })
        .map_err(backend_error)?;
        let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
        let mut hits = Tensor::zeros([], (Kind::Int64, self.device));
        let mut losses = Vec::new();
        for k in 0..steps {
            let idx = idx.narrow(0, k * batch, batch);
            let (net, opt, train) = (self.net.as_ref(), &mut self.opt, &self.train);
            eager_step(
                net,
                opt,
                train,
                &idx,
                batch,
                &mut loss_sum,
                &mut hits,
                &mut losses,
            )?;
        }
        let losses = Tensor::stack(&losses, 0).to_kind(Kind::Float);
        let eager = StepOutcome {
            loss: mean(&floats(&losses)?),
            tensors: host(&named)?,
        };
        let Some(g) = self.graphed.as_mut() else {
            return Ok(0);
        };
        tch::no_grad(|| -> Result<(), tch::TchError> {
            let _ = g.loss_sum.f_add_(&loss_sum)?;
            let _ = g.hits.f_add_(&hits)?;
            g.losses.narrow(0, slot, steps).f_copy_(&losses)?;
            let _ = g.slot.f_add_scalar_(steps)?;
            Ok(())
        })
        .map_err(backend_error)?;
        g.replayed.extend((0..steps).map(|_| true));
        g.verified = true;
        let seconds = clock.elapsed().as_secs_f64();
        let first = g.replayed.len() - steps as usize + 1;
        let judged =
            replay_check::judge(&before, &eager, &replayed, REPLAY_TOLERANCE, first, seconds);
        g.fell_back = judged.is_err();
        g.check = Some(judged.unwrap_or_else(|note| note));
        Ok(steps)
    }

    #[cfg(not(lenet_tch_graphs))]
    fn replay_steps(
        &mut self,
        _order: &Tensor,
        _start: i64,
        _remaining: i64,
    ) -> Result<i64, TrainError> {
        Ok(0)
    }

    /// An eager step, on the graph's side stream while it warms up.
    fn eager(
        &mut self,
        idx: &Tensor,
        len: i64,
        loss_sum: &mut Tensor,
        hits: &mut Tensor,
        losses: &mut Vec<Tensor>,
    ) -> Result<(), TrainError> {
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &mut self.graphed {
            g.replayed.push(false);
            if g.warms_up(len) {
                g.warmed += 1;
                let (net, opt, train) = (self.net.as_ref(), &mut self.opt, &self.train);
                return g.capture.on_side_stream(|| {
                    eager_step(net, opt, train, idx, len, loss_sum, hits, losses)
                });
            }
        }
        eager_step(
            self.net.as_ref(),
            &mut self.opt,
            &self.train,
            idx,
            len,
            loss_sum,
            hits,
            losses,
        )
    }
}

impl Trainer for TchTrainer {
    fn train_epoch(
        &mut self,
        order: &[u32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Totals, TrainError> {
        let order: Vec<i64> = order.iter().map(|&i| i as i64).collect();
        let n = order.len() as i64;
        let order = Tensor::from_slice(&order).to_device(self.device);
        let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
        let mut hits = Tensor::zeros([], (Kind::Int64, self.device));
        // Each step's loss stays on the device; read back only if the epoch's sum is not finite.
        let mut losses = Vec::with_capacity((n as usize).div_ceil(self.batch_size as usize));
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &mut self.graphed {
            g.start_epoch();
        }
        let mut start = 0;
        let mut step = 0;
        while start < n {
            let replayed = self.replay_steps(&order, start, n - start)?;
            if replayed > 0 {
                start += replayed * self.batch_size;
                for _ in 0..replayed {
                    step += 1;
                    progress(step);
                }
                continue;
            }
            let len = self.batch_size.min(n - start);
            let idx = order.narrow(0, start, len);
            self.eager(&idx, len, &mut loss_sum, &mut hits, &mut losses)?;
            start += len;
            step += 1;
            progress(step);
        }
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &self.graphed {
            // The replays' sums beside the eager steps'.
            loss_sum += &g.loss_sum;
            hits += &g.hits;
        }
        let mut totals = read_totals(&loss_sum, &hits, n)?;
        if !totals.loss_sum.is_finite() {
            #[cfg(lenet_tch_graphs)]
            if let Some(g) = &self.graphed {
                losses = g.step_losses(losses)?;
            }
            let all = Vec::<f32>::try_from(Tensor::stack(&losses, 0).to_kind(Kind::Float))
                .map_err(backend_error)?;
            totals.first_nonfinite = common::harness::first_nonfinite(&all);
        }
        Ok(totals)
    }

    fn evaluate(&mut self, split: SplitKind) -> Result<Totals, TrainError> {
        let data = self.split(split);
        let n = data.len();
        let batch = common::harness::EVAL_BATCH_SIZE as i64;
        tch::no_grad(|| {
            let mut loss_sum = Tensor::zeros([], (Kind::Float, self.device));
            let mut hits = Tensor::zeros([], (Kind::Int64, self.device));
            let mut start = 0;
            while start < n {
                let len = batch.min(n - start);
                let xs = data.images.narrow(0, start, len);
                let ys = data.labels.narrow(0, start, len);
                let logits = self.net.forward(&xs);
                loss_sum += logits.cross_entropy_for_logits(&ys) * len as f64;
                hits += correct(&logits, &ys);
                start += len;
            }
            read_totals(&loss_sum, &hits, n)
        })
    }

    fn weights(&self) -> Result<Weights, TrainError> {
        export(&self.vs)
    }

    fn synchronize(&self) -> Result<(), TrainError> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok(())
    }

    fn backend(&self) -> BackendInfo {
        let (device, device_name) = match self.device {
            Device::Cuda(i) => (DeviceKind::Cuda, format!("cuda:{i}")),
            _ => (DeviceKind::Cpu, "cpu".to_string()),
        };
        let mut notes = vec![format!(
            "cudnn: {}",
            if tch::Cuda::cudnn_is_available() {
                "available"
            } else {
                "not available"
            }
        )];
        if device == DeviceKind::Cuda && self.tuning.is_empty() {
            notes.push("cudnn.benchmark: false (libtorch default)".into());
        }
        BackendInfo {
            framework: FRAMEWORK.into(),
            framework_version: format!("tch 0.24.0, libtorch {LIBTORCH_VERSION}"),
            device,
            device_name,
            threads: tch::get_num_threads().max(0) as usize,
            features: if cuda_built() {
                vec!["libtorch with CUDA".into()]
            } else {
                vec!["libtorch CPU only".into()]
            },
            notes,
            tuning: self.tuning_as_run(),
        }
    }
}

/// How closely the CUDA graph's first replay must agree with the same steps run eagerly (relative:
/// the same kernels on the same device; `common::replay_check`), as for candle and burn.
#[cfg(lenet_tch_graphs)]
const REPLAY_TOLERANCE: f64 = 1e-3;

impl TchTrainer {
    /// The tuned settings, with what the CUDA graph's self-check found on its entry.
    fn tuning_as_run(&self) -> Vec<Tuning> {
        #[allow(unused_mut)]
        let mut tuning = self.tuning.clone();
        #[cfg(lenet_tch_graphs)]
        if let Some(g) = &self.graphed {
            for t in tuning.iter_mut().filter(|t| t.setting == CUDA_GRAPH) {
                match (&g.check, g.fell_back) {
                    (Some(check), true) => {
                        t.applied = false;
                        t.note = check.clone();
                    }
                    (Some(check), false) => t.note = format!("{}; {check}", t.note),
                    (None, _) => {}
                }
            }
        }
        tuning
    }
}

/// A forward pass without training: logits `[n, 10]` as row-major f32, for checks.
fn logits(model: ModelKind, weights: &Weights, images: &[f32]) -> Result<Vec<f32>, TrainError> {
    weights.check(&model.spec())?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = model::net(model, &vs.root());
    load_weights(&mut vs, weights)?;
    let n = (images.len() / (IMAGE_SIDE * IMAGE_SIDE)) as i64;
    let side = IMAGE_SIDE as i64;
    let xs = Tensor::from_slice(images).reshape([n, 1, side, side]);
    let out = tch::no_grad(|| net.forward(&xs));
    Vec::<f32>::try_from(out.flatten(0, -1)).map_err(backend_error)
}

/// tch in the registry.
pub struct Tch;

/// The registry's value for tch.
pub static TCH: Tch = Tch;

impl Framework for Tch {
    fn name(&self) -> &'static str {
        FRAMEWORK
    }

    fn trainer(
        &self,
        spec: &RunSpec,
        data: &Mnist,
        init: &Weights,
    ) -> Result<Box<dyn Trainer>, TrainError> {
        Ok(Box::new(TchTrainer::new(spec, data, init)?))
    }

    fn native_weights(&self, model: ModelKind, seed: u64) -> Result<Weights, TrainError> {
        native_weights(model, seed)
    }

    fn logits(
        &self,
        model: ModelKind,
        weights: &Weights,
        images: &[f32],
    ) -> Result<Vec<f32>, TrainError> {
        logits(model, weights, images)
    }

    fn cuda_available(&self) -> bool {
        cuda_available()
    }

    fn defaults(&self) -> FrameworkDefaults {
        FrameworkDefaults::row([
            FRAMEWORK,
            "uniform ±√6/√fan_in (Kaiming uniform, ReLU gain)",
            "zeros",
            "uniform ±√6/√fan_in (Kaiming uniform, ReLU gain)",
            "uniform ±1/√inputs",
            "nn::Adam, eps 1e-8",
            "0",
            "yes (tch::manual_seed)",
        ])
    }

    fn model_source(&self) -> &'static str {
        "crates/tch-impl/src/model.rs"
    }

    fn colour(&self) -> Colour {
        [255, 127, 14]
    }

    /// libtorch brings CUDA: a CUDA libtorch at run time is all it takes.
    fn cuda_build(&self) -> CudaBuild {
        CudaBuild::library()
    }

    fn bare(&self, model: ModelKind, data: &Mnist) -> Result<Box<dyn BareLoop>, TrainError> {
        Ok(Box::new(bare::Bare::new(model, data)?))
    }

    /// tch is the framework the others are held to.
    fn step_tolerance(&self, _model: ModelKind, _step: usize) -> Option<f64> {
        None
    }
}
