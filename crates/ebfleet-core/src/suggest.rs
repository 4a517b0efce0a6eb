//! "Did you mean": the closest of a set of known names to a mistyped one.

/// The candidate most like `word` (case ignored), if any is close enough
/// to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `"; did you mean 'x'?"`, or nothing.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean '{c}'?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_nonsense_finds_none() {
        let tcs = ["SYSTEM", "GCCcore", "GCC", "gompi", "gfbf", "foss", "intel"];
        assert_eq!(closest("fooss", tcs), Some("foss"));
        assert_eq!(closest("gcccore", tcs), Some("GCCcore"));
        assert_eq!(closest("gomp", tcs), Some("gompi"));
        assert_eq!(closest("zzzzzz", tcs), None);
        assert_eq!(did_you_mean("fos", tcs), "; did you mean 'foss'?");
        assert_eq!(did_you_mean("qwerty", tcs), "");
        let platforms = [
            "amzn-2023_graviton-4",
            "amzn-2023_graviton-3",
            "amzn-2023_epyc-gen-4",
        ];
        assert_eq!(
            closest("amzn-2023_gravitn-4", platforms),
            Some("amzn-2023_graviton-4")
        );
    }
}
