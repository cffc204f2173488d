//! The frameworks as the presentation knows them: the registry's descriptions (what `lenet
//! frameworks --json` prints), looked up by name. A report of a framework the catalogue lacks (an
//! older run, a build without it) still shows, in grey and without a defaults row.

use common::framework::{Colour, FrameworkInfo};
use common::Error;
use serde::{Deserialize, Serialize};

/// The colour of a framework the catalogue does not know.
pub const GREY: Colour = [127, 127, 127];

/// Every framework a binary knows, in the registry's order (the references first), and the
/// project's frameworks that its build left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    pub frameworks: Vec<FrameworkInfo>,
    #[serde(default)]
    pub not_built: Vec<NotBuilt>,
}

/// A framework of the project that a build left out, and the cargo feature that builds it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotBuilt {
    pub name: String,
    pub feature: String,
}

impl Catalogue {
    pub fn new(frameworks: Vec<FrameworkInfo>) -> Self {
        Self {
            frameworks,
            not_built: Vec::new(),
        }
    }

    pub fn with_not_built(mut self, not_built: Vec<NotBuilt>) -> Self {
        self.not_built = not_built;
        self
    }

    /// Reads what `lenet frameworks --json` printed (an object with `frameworks` and `not_built`;
    /// a bare list of frameworks from binaries that had every framework is read too).
    pub fn from_json(text: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Printed {
            Catalogue(Catalogue),
            List(Vec<FrameworkInfo>),
        }
        match serde_json::from_str(text) {
            Ok(Printed::Catalogue(c)) => Ok(c),
            Ok(Printed::List(list)) => Ok(Self::new(list)),
            Err(e) => Err(Error::Invalid(format!("not a framework list: {e}"))),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The feature that builds `name` in, when the build left it out.
    pub fn feature_of(&self, name: &str) -> Option<&str> {
        self.not_built
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.feature.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&FrameworkInfo> {
        self.frameworks.iter().find(|f| f.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.frameworks.iter().map(|f| f.name.as_str()).collect()
    }

    /// The framework every other one's time is divided by.
    pub fn baseline(&self) -> Option<&str> {
        self.frameworks
            .iter()
            .find(|f| f.baseline)
            .map(|f| f.name.as_str())
    }

    /// The framework every other one is held to for parity (and whose answers serving compares
    /// with).
    pub fn parity_reference(&self) -> Option<&str> {
        self.frameworks
            .iter()
            .find(|f| f.parity_reference)
            .map(|f| f.name.as_str())
    }

    pub fn colour(&self, name: &str) -> Colour {
        self.get(name).map_or(GREY, |f| f.colour)
    }
}
