//! Integration tests of `ebfleet-aws` against a moto server; the tests are
//! in `tests/moto.rs` (one binary). Run them with `scripts/test-aws.sh`.
