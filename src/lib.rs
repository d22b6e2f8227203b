//! Integration tests and benchmarks of the idemproof workspace live in `tests/` and `benches/`.
