//! Verdicts: which records a score says are worth a human's attention, by an
//! automatic rule per kind of score (a fixed reading of a share, or a robust
//! cut of the score's own distribution), or by a threshold the user gives.

/// Each record's verdict, and the rule that gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Per record: flagged or not.
    pub flagged: Vec<bool>,
    /// The score at and above which records were flagged, when the rule is
    /// a cut of the score.
    pub cut: Option<f32>,
    /// The rule's name, as PROTOCOL.md lists it.
    pub rule: &'static str,
}

/// `share_verdict`'s cut: more than half of the evidence disagrees.
pub const SHARE_CUT: f32 = 0.5;

/// Tukey's far-out fence, `Q3 + 3 x IQR`: for a record judged against the
/// dataset's own scores, which the outliers looked for are part of.
pub const FAR_OUT_FENCE: f32 = 3.0;

/// Tukey's outer-inner fence, `Q3 + 1.5 x IQR` (or `Q1 - 1.5 x IQR`): for a
/// record judged against a clean reference distribution it is not part of.
pub const OUTER_FENCE: f32 = 1.5;

impl Verdict {
    /// Flags the records scoring at least `threshold`.
    ///
    /// ```
    /// use mutant_core::kernels::Verdict;
    /// let verdict = Verdict::at_least(&[0.1, 0.7, 0.5], 0.5);
    /// assert_eq!(verdict.flagged, vec![false, true, true]);
    /// assert_eq!(verdict.n_flagged(), 2);
    /// ```
    pub fn at_least(scores: &[f32], threshold: f32) -> Self {
        Verdict {
            flagged: scores.iter().map(|&score| score >= threshold).collect(),
            cut: Some(threshold),
            rule: "threshold",
        }
    }

    /// Verdicts a kernel decided by a rule of its own (`rule` names it).
    pub fn by_rule(flagged: Vec<bool>, rule: &'static str) -> Self {
        Verdict {
            flagged,
            cut: None,
            rule,
        }
    }

    /// How many records are flagged.
    pub fn n_flagged(&self) -> usize {
        self.flagged.iter().filter(|&&flagged| flagged).count()
    }

    /// The flagged share of the records, 0 when there are none.
    pub fn share_flagged(&self) -> f64 {
        if self.flagged.is_empty() {
            0.0
        } else {
            self.n_flagged() as f64 / self.flagged.len() as f64
        }
    }
}

/// The verdict of a score that is a share of disagreeing evidence, in
/// `[0, 1]` (`boundary_uncertainty`: the share of reference neighbours
/// whose label differs from the prediction; `activation_uncertainty`: how
/// far the norm sits in its class's tail): flagged when more than
/// [`SHARE_CUT`] of it disagrees, i.e. when the evidence is more against
/// the record than for it.
///
/// ```
/// use mutant_core::kernels::share_verdict;
/// assert_eq!(share_verdict(&[0.2, 0.5, 0.6]).flagged, vec![false, false, true]);
/// ```
pub fn share_verdict(scores: &[f32]) -> Verdict {
    Verdict {
        flagged: scores.iter().map(|&score| score > SHARE_CUT).collect(),
        cut: Some(SHARE_CUT),
        rule: "majority_disagrees",
    }
}

/// The verdict of a positive, right-skewed score (`uniqueness` and
/// `novelty`: density ratios around 1; `class_outlier`: Mahalanobis
/// distances): flagged above Tukey's upper fence of `ln(score)` over
/// `null_scores`, the distribution of the same score on records taken to
/// be ordinary, at `fence` interquartile ranges above the third quartile.
///
/// The log makes ratios symmetric; quartiles are not moved by the outliers
/// looked for while those stay under a quarter of the data. Callers pick
/// the null and the fence by what they judge: a dataset against its own
/// scores with [`FAR_OUT_FENCE`]; a target against the reference's own
/// scores with [`OUTER_FENCE`]. Scores with no spread flag nothing.
///
/// ```
/// use mutant_core::kernels::{outlier_verdict, FAR_OUT_FENCE};
/// let mut scores = vec![1.0f32, 0.9, 1.1, 1.05, 0.95, 1.0, 0.98, 1.02];
/// scores.push(4.0);
/// let verdict = outlier_verdict(&scores, &scores, FAR_OUT_FENCE);
/// assert_eq!(verdict.n_flagged(), 1);
/// assert!(verdict.flagged[8]);
/// ```
pub fn outlier_verdict(scores: &[f32], null_scores: &[f32], fence: f32) -> Verdict {
    let logs: Vec<f32> = null_scores
        .iter()
        .filter(|score| score.is_finite() && **score > 0.0)
        .map(|score| score.ln())
        .collect();
    let cut = quartiles(logs)
        .filter(|(first, third)| third > first)
        .map_or(f32::INFINITY, |(first, third)| {
            (third + fence * (third - first)).exp()
        });
    Verdict {
        flagged: scores.iter().map(|&score| score > cut).collect(),
        cut: cut.is_finite().then_some(cut),
        rule: "log_upper_fence",
    }
}

/// Tukey's lower fence of `values`, `Q1 - fence x IQR`; `None` for no
/// values. Used by `activation_uncertainty` on the norms of a class.
pub(crate) fn lower_fence(values: &[f32], fence: f32) -> Option<f32> {
    quartiles(values.to_vec()).map(|(first, third)| first - fence * (third - first))
}

/// The first and third quartiles of `values` (linear interpolation between
/// order statistics), `None` when there are none.
fn quartiles(mut values: Vec<f32>) -> Option<(f32, f32)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f32::total_cmp);
    let at = |fraction: f32| {
        let position = fraction * (values.len() - 1) as f32;
        let below = position.floor() as usize;
        let above = (below + 1).min(values.len() - 1);
        let weight = position - below as f32;
        values[below] + weight * (values[above] - values[below])
    };
    Some((at(0.25), at(0.75)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_like_numpy() {
        assert_eq!(quartiles(Vec::new()), None);
        assert_eq!(quartiles(vec![1.0, 2.0, 3.0, 4.0, 5.0]), Some((2.0, 4.0)));
        assert_eq!(quartiles(vec![4.0, 1.0, 3.0, 2.0]), Some((1.75, 3.25)));
        assert_eq!(lower_fence(&[1.0, 2.0, 3.0, 4.0, 5.0], 1.5), Some(-1.0));
    }

    #[test]
    fn scores_without_spread_flag_nothing_and_stay_finite() {
        let ones = [1.0; 50];
        let verdict = outlier_verdict(&ones, &ones, FAR_OUT_FENCE);
        assert_eq!(verdict.n_flagged(), 0);
        assert_eq!(verdict.cut, None);
        assert_eq!(outlier_verdict(&[], &[], OUTER_FENCE).share_flagged(), 0.0);
        let odd = [0.0, 0.0, 1.0, f32::NAN];
        assert_eq!(outlier_verdict(&odd, &odd, FAR_OUT_FENCE).flagged.len(), 4);
    }

    #[test]
    fn the_cut_ignores_the_scale_and_a_few_outliers() {
        let mut scores: Vec<f32> = (0..200)
            .map(|index| 1.0 + (index % 17) as f32 * 0.01)
            .collect();
        scores.extend([5.0, 6.0, 7.0]);
        let verdict = outlier_verdict(&scores, &scores, FAR_OUT_FENCE);
        assert_eq!(verdict.n_flagged(), 3);
        let scaled: Vec<f32> = scores.iter().map(|score| score * 1000.0).collect();
        assert_eq!(
            outlier_verdict(&scaled, &scaled, FAR_OUT_FENCE).flagged,
            verdict.flagged
        );
        let mut more_outliers = scores.clone();
        more_outliers.extend([50.0; 20]);
        let cut = outlier_verdict(&more_outliers, &more_outliers, FAR_OUT_FENCE)
            .cut
            .unwrap();
        assert!(cut < 2.0 && cut > 1.1, "{cut}");
    }

    #[test]
    fn a_clean_null_judges_a_target_full_of_novelties() {
        let null: Vec<f32> = (0..100)
            .map(|index| 1.0 + (index % 10) as f32 * 0.02)
            .collect();
        let target = [1.0f32, 1.1, 3.0, 3.0, 3.0, 3.0];
        let verdict = outlier_verdict(&target, &null, OUTER_FENCE);
        assert_eq!(verdict.flagged, vec![false, false, true, true, true, true]);
    }
}
