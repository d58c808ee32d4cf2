//! The typed Rust SDK for Mutant; its methods arrive with the server issue.

pub use mutant_core::model;
