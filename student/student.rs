//! STUDENT MODE only: this module exists in the copies `just student N`
//! makes (never in minibox's own build). Each stub calls [`not_written`]
//! first, so a run says which of your functions it skipped.

/// Say on stderr that `item` is still a stub: the container goes on
/// without stage `stage`'s idea, and the checker will show what is missing.
pub fn not_written(stage: &str, item: &str, section: &str) {
    eprintln!(
        "minibox student mode: {item} is not written yet (stage {stage}; chapter {stage}, section \"{section}\"): a stub stands in"
    );
}
