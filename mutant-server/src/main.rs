//! The Mutant server binary; routes arrive with the server issue.

fn main() {}
