#![no_main]
//! `cargo fuzz run answer -s none`: see clusterdns::fuzzing::answer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clusterdns::fuzzing::answer(data));
