//! The frameworks as the presentation knows them: the registry's descriptions (what `lenet
//! frameworks --json` prints), looked up by name. A report of a framework the catalogue lacks (an
//! older run, a build without it) still shows, in grey and without a defaults row.

use common::framework::{Colour, FrameworkInfo};
use common::Error;

/// The colour of a framework the catalogue does not know.
pub const GREY: Colour = [127, 127, 127];

/// Every framework a binary knows, in the registry's order (the references first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    pub frameworks: Vec<FrameworkInfo>,
}

impl Catalogue {
    pub fn new(frameworks: Vec<FrameworkInfo>) -> Self {
        Self { frameworks }
    }

    /// Reads what `lenet frameworks --json` printed.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text)
            .map(Self::new)
            .map_err(|e| Error::Invalid(format!("not a framework list: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.frameworks).unwrap_or_else(|_| "[]".into())
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

    pub fn colour(&self, name: &str) -> Colour {
        self.get(name).map_or(GREY, |f| f.colour)
    }
}
