//! The recipe's Adam for the captured step: burn-optim's arithmetic with its step count and bias
//! corrections on the device, each update written back into its own buffer.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::TrainError;

use super::write_back;
use crate::model::Net;
use crate::scalar;

/// The recipe's Adam with its step count and bias corrections on the device: per parameter the
/// update burn-optim's Adam makes (`m·c / (√v + ε·√(1-β₂ᵗ))` with `c = √(1-β₂ᵗ)/(1-β₁ᵗ)`, times
/// the learning rate), with `c` and `ε·√(1-β₂ᵗ)` read from tables on the device at the step's slot
/// in the epoch. [`DeviceAdam::plan`] fills the tables before each epoch with the host's values of
/// exactly burn-optim's expressions (`powi` in f32), so that on the CPU each update is burn's to
/// the bit. Computing `βᵗ` on the device instead (`exp(t·ln β)` in f32) loses digits in `1-β₂ᵗ`
/// (about 1e-4 of it at the first step), enough for LeNet3's losses to part from the idiomatic
/// run's by 1.2e-4 at its tenth step on one CPU. The moments start at zero (burn's first step,
/// which starts them from the gradient, gives the same values) and, like the parameters, are
/// written back into their own buffers.
pub struct DeviceAdam {
    pub(super) beta_1: f32,
    pub(super) beta_2: f32,
    pub(super) epsilon: f32,
    pub(super) learning_rate: f64,
    /// Steps taken, as an f32 `[1]` on the device (exact up to 2²⁴ steps).
    pub(super) time: Tensor<1>,
    /// Steps whose corrections [`DeviceAdam::plan`] has written.
    pub(super) planned: usize,
    /// The planned steps' corrections, one entry per step of the epoch (none before the first).
    pub(super) table: Option<Corrections>,
    /// Each parameter's first and second moments, flattened.
    pub(super) moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

/// Bias corrections, shared by every parameter: one entry per step (a table), or one step's (`[1]`).
#[derive(Clone)]
pub(super) struct Corrections {
    /// `√(1-β₂ᵗ) / (1-β₁ᵗ)`.
    factor: Tensor<1>,
    /// `ε·√(1-β₂ᵗ)`.
    epsilon: Tensor<1>,
}

impl DeviceAdam {
    /// The recipe's Adam (betas 0.9/0.999, eps 1e-8) at `learning_rate`, its state on `device`.
    pub fn new(learning_rate: f64, device: &Device) -> Self {
        Self::with(0.9, 0.999, 1e-8, learning_rate, device)
    }

    pub(super) fn with(
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        learning_rate: f64,
        device: &Device,
    ) -> Self {
        Self {
            beta_1,
            beta_2,
            epsilon,
            learning_rate,
            time: Tensor::zeros([1], device),
            planned: 0,
            table: None,
            moments: HashMap::new(),
        }
    }

    /// Step `t`'s (from 1) corrections, as burn-optim's Adam computes them on the host.
    pub(super) fn corrections_at(&self, t: usize) -> (f32, f32) {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(t)).sqrt();
        let factor = bias_correction2_sqrt / (1.0 - self.beta_1.powi(t));
        (factor, self.epsilon * bias_correction2_sqrt)
    }

    /// Writes the corrections of the next `steps` steps into the tables, at slots 0 to `steps-1`:
    /// into the tables' own buffers where they have that length, so that a step recorded on them
    /// replays on the new values (returns true), else into new tables (false).
    pub(super) fn plan(&mut self, steps: usize, device: &Device) -> bool {
        let (factor, epsilon): (Vec<f32>, Vec<f32>) = (self.planned + 1..=self.planned + steps)
            .map(|t| self.corrections_at(t))
            .unzip();
        self.planned += steps;
        let factor = Tensor::<1>::from_data(TensorData::new(factor, [steps]), device);
        let epsilon = Tensor::<1>::from_data(TensorData::new(epsilon, [steps]), device);
        match &mut self.table {
            Some(t) if t.factor.dims()[0] == steps => {
                write_back(&mut t.factor, factor);
                write_back(&mut t.epsilon, epsilon);
                true
            }
            _ => {
                self.table = Some(Corrections { factor, epsilon });
                false
            }
        }
    }

    /// The corrections at `slot` (a `[1]` index into the planned steps), read on the device.
    pub(super) fn at(&self, slot: &Tensor<1, Int>) -> Option<Corrections> {
        let table = self.table.as_ref()?;
        Some(Corrections {
            factor: table.factor.clone().select(0, slot.clone()),
            epsilon: table.epsilon.clone().select(0, slot.clone()),
        })
    }

    /// The parameter `param` (on the plain device) after one step with `grad` (flattened): the new
    /// moments and the new parameter computed from clones of the old, then each written back into
    /// its own buffer.
    pub(super) fn update<const D: usize>(
        &mut self,
        id: ParamId,
        param: Tensor<D>,
        grad: Tensor<1>,
        c: &Corrections,
    ) -> Tensor<D> {
        let (beta_1, beta_2, lr) = (self.beta_1, self.beta_2, self.learning_rate);
        let (m, v) = self
            .moments
            .entry(id)
            .or_insert_with(|| (grad.zeros_like(), grad.zeros_like()));
        let m_new = m
            .clone()
            .mul_scalar(beta_1)
            .add(grad.clone().mul_scalar(1.0 - beta_1));
        let v_new = v
            .clone()
            .mul_scalar(beta_2)
            .add(grad.square().mul_scalar(1.0 - beta_2));
        let step = m_new
            .clone()
            .mul(c.factor.clone())
            .div(v_new.clone().sqrt().add(c.epsilon.clone()));
        let shape = param.shape();
        let n = shape.num_elements();
        let theta = param
            .clone()
            .reshape([n])
            .sub(step.mul_scalar(lr))
            .reshape(shape);
        write_back(m, m_new);
        write_back(v, v_new);
        let mut param = param;
        write_back(&mut param, theta);
        param
    }

    /// `net` after one step with the gradients of `grads` and the step's `corrections` (from
    /// [`DeviceAdam::at`]): each parameter updated in its own buffer, the step count advanced.
    pub(super) fn step(
        &mut self,
        net: Net,
        grads: GradientsParams,
        corrections: Corrections,
    ) -> Net {
        let time = self.time.clone().add_scalar(1.0);
        write_back(&mut self.time, time);
        net.map(&mut Mapper {
            adam: self,
            grads,
            corrections,
        })
    }

    /// The steps taken, read back from the device.
    pub fn steps(&self) -> Result<f32, TrainError> {
        scalar(self.time.clone(), "reading Adam's step count")
    }
}

/// Applies [`DeviceAdam`] to each parameter of a module.
struct Mapper<'a> {
    adam: &'a mut DeviceAdam,
    grads: GradientsParams,
    corrections: Corrections,
}

impl ModuleMapper for Mapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let n = grad.shape().num_elements();
        let updated = self
            .adam
            .update(id, tensor.inner(), grad.reshape([n]), &self.corrections);
        let tensor = Tensor::from_inner(updated).require_grad();
        Param::from_mapped_value(id, tensor, mapper)
    }
}
