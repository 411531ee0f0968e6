//! Compile errors of `#[tagged_cache]`: each file under `tests/ui/` must fail
//! to compile with the message beside it. They live in this package so that
//! trybuild re-checks only this package's few dev-dependencies.

#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
