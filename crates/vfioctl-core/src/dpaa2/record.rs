//! What a create run has made so far, kept in the journal so that whatever stops it part way
//! (an MC refusal, a crash) leaves a record from which everything made can be taken apart.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Obj, Step};
use crate::devref::{FslMcName, Owner};

/// The objects one run has made, in the order restool made them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Made {
    /// The new container, once made.
    #[serde(default, with = "opt_name")]
    pub container: Option<FslMcName>,
    /// Objects made in the root container.
    #[serde(default, with = "names")]
    pub objects: Vec<FslMcName>,
    /// Those of them moved into the container (plugged).
    #[serde(default, with = "names")]
    pub assigned: Vec<FslMcName>,
    /// The DPNI endpoint once connected.
    #[serde(default, with = "opt_name")]
    pub connected: Option<FslMcName>,
}

impl Made {
    /// The name behind `obj`, once known.
    pub fn resolve(&self, obj: &Obj) -> Option<FslMcName> {
        match obj {
            Obj::Named(n) => Some(n.clone()),
            Obj::New("dprc") => self.container.clone(),
            Obj::New(kind) => self.objects.iter().find(|o| o.kind() == *kind).cloned(),
        }
    }

    /// The commands that take apart what was made, last made first: disconnect, unplug and move
    /// each object back, destroy the objects, destroy the container.
    pub fn teardown(&self, root: &FslMcName) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(endpoint) = &self.connected {
            steps.push(Step::Disconnect {
                container: root.clone(),
                endpoint: endpoint.clone(),
            });
        }
        if let Some(container) = &self.container {
            for object in self.assigned.iter().rev() {
                steps.push(Step::Assign {
                    parent: Obj::Named(container.clone()),
                    object: Obj::Named(object.clone()),
                    target: Obj::Named(container.clone()),
                    plugged: false,
                });
                steps.push(Step::Unassign {
                    parent: root.clone(),
                    object: object.clone(),
                    target: container.clone(),
                });
            }
        }
        steps.extend(
            self.objects
                .iter()
                .rev()
                .map(|o| Step::DestroyObject { object: o.clone() }),
        );
        if let Some(container) = &self.container {
            steps.push(Step::DestroyContainer {
                container: container.clone(),
            });
        }
        steps
    }

    /// Forgets what `step` (a teardown step that succeeded) gave back, so a teardown stopped
    /// part way resumes where it stopped.
    pub fn undone(&mut self, step: &Step) {
        match step {
            Step::Disconnect { .. } => self.connected = None,
            Step::Unassign { object, .. } => self.assigned.retain(|o| o != object),
            Step::DestroyObject { object } => self.objects.retain(|o| o != object),
            Step::DestroyContainer { .. } => self.container = None,
            _ => {}
        }
    }

    /// True when nothing is left to take apart.
    pub fn is_empty(&self) -> bool {
        self.container.is_none() && self.objects.is_empty()
    }
}

/// One container made for an owner, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Who it was made for: `restore` of this owner takes it apart.
    pub owner: Owner,
    /// The root container it was made in.
    #[serde(with = "name")]
    pub root: FslMcName,
    /// What exists of it.
    pub made: Made,
    /// Seconds since the epoch when the run started.
    pub since: u64,
}

mod name {
    use super::*;

    pub(super) fn serialize<S: Serializer>(n: &FslMcName, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FslMcName, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod opt_name {
    use super::*;

    pub(super) fn serialize<S: Serializer>(n: &Option<FslMcName>, s: S) -> Result<S::Ok, S::Error> {
        n.as_ref().map(ToString::to_string).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<FslMcName>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod names {
    use super::*;

    pub(super) fn serialize<S: Serializer>(n: &[FslMcName], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(n.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FslMcName>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}
