//! A Rust program that does nothing, built with the tracker's own profile: what any Rust binary
//! pays to start (the command-level benchmark's second floor, beside `/bin/true`).

fn main() {}
