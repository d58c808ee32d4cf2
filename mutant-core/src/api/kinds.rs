//! The analysis kinds of protocol version 1: their wire names, whether they
//! take a reference dataset, and whether they score every record. Defined
//! once, here, for the server, the SDKs and the web page's form.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The algorithms of DESIGN.md's table that run as analyses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisKind {
    /// Disagreement of a record's prediction with its reference neighbours' labels.
    BoundaryUncertainty,
    /// How unusual a record's vector norm is for its predicted class.
    ActivationUncertainty,
    /// Mahalanobis distance to the record's class in the reference.
    ClassOutlier,
    /// Labels that are probably wrong.
    Mislabel,
    /// Density-aware distance to a reference.
    Novelty,
    /// Density-aware distance to the rest of the dataset.
    Uniqueness,
    /// Pairs of (near) duplicates, within one dataset or across two.
    NearDuplicates,
    /// Has the target drifted from the reference?
    Drift,
    /// The next records to label.
    Select,
    /// PCA coordinates for plotting.
    Projection,
}

/// Whether a kind takes a reference dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceUse {
    /// It must have one.
    Required,
    /// It may have one.
    Optional,
    /// It takes none.
    None,
}

impl AnalysisKind {
    /// Every kind, in DESIGN.md's order.
    pub const ALL: [AnalysisKind; 10] = [
        AnalysisKind::BoundaryUncertainty,
        AnalysisKind::ActivationUncertainty,
        AnalysisKind::ClassOutlier,
        AnalysisKind::Mislabel,
        AnalysisKind::Novelty,
        AnalysisKind::Uniqueness,
        AnalysisKind::NearDuplicates,
        AnalysisKind::Drift,
        AnalysisKind::Select,
        AnalysisKind::Projection,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisKind::BoundaryUncertainty => "boundary_uncertainty",
            AnalysisKind::ActivationUncertainty => "activation_uncertainty",
            AnalysisKind::ClassOutlier => "class_outlier",
            AnalysisKind::Mislabel => "mislabel",
            AnalysisKind::Novelty => "novelty",
            AnalysisKind::Uniqueness => "uniqueness",
            AnalysisKind::NearDuplicates => "near_duplicates",
            AnalysisKind::Drift => "drift",
            AnalysisKind::Select => "select",
            AnalysisKind::Projection => "projection",
        }
    }

    /// Whether it gives every target record a score (that `select` can
    /// weigh).
    pub fn is_record_score(self) -> bool {
        match self {
            AnalysisKind::BoundaryUncertainty
            | AnalysisKind::ActivationUncertainty
            | AnalysisKind::ClassOutlier
            | AnalysisKind::Mislabel
            | AnalysisKind::Novelty
            | AnalysisKind::Uniqueness => true,
            AnalysisKind::NearDuplicates
            | AnalysisKind::Drift
            | AnalysisKind::Select
            | AnalysisKind::Projection => false,
        }
    }

    /// Whether it compares against a reference dataset.
    pub fn reference_use(self) -> ReferenceUse {
        match self {
            AnalysisKind::BoundaryUncertainty
            | AnalysisKind::ActivationUncertainty
            | AnalysisKind::ClassOutlier
            | AnalysisKind::Novelty
            | AnalysisKind::Drift => ReferenceUse::Required,
            AnalysisKind::NearDuplicates | AnalysisKind::Select => ReferenceUse::Optional,
            AnalysisKind::Mislabel | AnalysisKind::Uniqueness | AnalysisKind::Projection => {
                ReferenceUse::None
            }
        }
    }
}

impl FromStr for AnalysisKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        AnalysisKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| Error::InvalidParameter {
                name: "kind",
                reason: format!(
                    "unknown analysis {text:?}; use one of {}",
                    AnalysisKind::ALL.map(AnalysisKind::as_str).join(", ")
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_parse_back_and_match_serde() {
        for kind in AnalysisKind::ALL {
            assert_eq!(kind.as_str().parse::<AnalysisKind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        let unknown = "clustering"
            .parse::<AnalysisKind>()
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("mislabel"), "{unknown}");
    }
}
