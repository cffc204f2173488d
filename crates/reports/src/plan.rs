//! A run's plan: what must be the same for two runs to sit in one table. The points a comparison
//! varies on purpose (batch size, threads, profile) and the seed of each repeat are in a report's
//! name and get rows or columns of their own; the plan is what is not: how many epochs, over which
//! images (the dataset and `--limit`), from which initial weights, at which learning rate. A
//! results folder holds one plan (`cargo xtask compare` refuses to add another's runs to it), and a
//! table that holds several says so.

use std::fmt;

use common::harness::{InitKind, RunSpec};
use common::mnist::Dataset;

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub epochs: u32,
    /// Train on the first `limit` training images and test on the first `limit` test images.
    pub limit: Option<usize>,
    pub dataset: Dataset,
    pub init: InitKind,
    pub learning_rate: f64,
}

impl Plan {
    pub fn of(spec: &RunSpec) -> Self {
        Self {
            epochs: spec.epochs,
            limit: spec.limit,
            dataset: spec.dataset,
            init: spec.init,
            learning_rate: spec.learning_rate,
        }
    }
}

/// `1 epoch on the first 640 images of MNIST`, `10 epochs on every image of Fashion-MNIST, native
/// initial weights, learning rate 0.01`: the recipe's values unsaid.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.epochs == 1 { "" } else { "s" };
        write!(f, "{} epoch{s} on ", self.epochs)?;
        match self.limit {
            Some(n) => write!(f, "the first {n} images")?,
            None => write!(f, "every image")?,
        }
        write!(f, " of {}", self.dataset.title())?;
        if self.init == InitKind::Native {
            write!(f, ", native initial weights")?;
        }
        if self.learning_rate != common::harness::LEARNING_RATE {
            write!(f, ", learning rate {}", self.learning_rate)?;
        }
        Ok(())
    }
}

/// The plans of `specs`, each once, in the order first seen, with how many of `specs` have it.
pub fn plans<'a>(specs: impl IntoIterator<Item = &'a RunSpec>) -> Vec<(Plan, usize)> {
    let mut out: Vec<(Plan, usize)> = Vec::new();
    for spec in specs {
        let plan = Plan::of(spec);
        match out.iter_mut().find(|(p, _)| *p == plan) {
            Some((_, n)) => *n += 1,
            None => out.push((plan, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ModelKind;

    #[test]
    fn a_plan_says_what_differs_from_the_recipe() {
        let recipe = RunSpec::recipe("tch", ModelKind::LeNet2);
        assert_eq!(
            Plan::of(&recipe).to_string(),
            "10 epochs on every image of MNIST"
        );
        let short = RunSpec {
            epochs: 1,
            limit: Some(640),
            ..recipe.clone()
        };
        assert_eq!(
            Plan::of(&short).to_string(),
            "1 epoch on the first 640 images of MNIST"
        );
        let other = RunSpec {
            dataset: Dataset::FashionMnist,
            init: InitKind::Native,
            learning_rate: 0.01,
            ..recipe.clone()
        };
        assert_eq!(
            Plan::of(&other).to_string(),
            "10 epochs on every image of Fashion-MNIST, native initial weights, learning rate 0.01"
        );
        // Points and seeds are not the plan.
        let point = RunSpec {
            batch_size: 512,
            threads: Some(1),
            profile: common::harness::Profile::Tuned,
            seed: 4,
            framework: "burn".into(),
            model: ModelKind::LeNet3,
            ..recipe.clone()
        };
        assert_eq!(Plan::of(&point), Plan::of(&recipe));
        let found = plans([&recipe, &short, &point]);
        assert_eq!(found, [(Plan::of(&recipe), 2), (Plan::of(&short), 1)]);
    }
}
