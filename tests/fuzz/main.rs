//! Fuzz targets (bolero). Each `#[test]` below is one target over arbitrary bytes, which the
//! target reads as structured choices (`input::Input`).
//!
//! - `cargo test --test fuzz`: on stable, bolero's random engine runs each target for the time
//!   given here (about 45 s of target time in all, on two threads). `BOLERO_RANDOM_TEST_TIME_MS`
//!   or `BOLERO_RANDOM_ITERATIONS` override it; a failure prints `BOLERO_RANDOM_SEED=…`, which
//!   replays it.
//! - `scripts/fuzz.sh SECONDS [TARGET…]`: each target under libFuzzer (cargo-bolero, nightly), or
//!   the random engine at length where there is no nightly. See the script.
//!
//! | target | what | properties |
//! |---|---|---|
//! | `http_request` | the Router: JSON-RPC messages for every method and tool, batches, raw bodies, odd methods, paths, headers | no panic; an answer within 30 s with a known status (never 500), under the size bound; a 200 is JSON; a well-formed request gets its JSON-RPC answer, a notification 202 |
//! | `lambda_event` | API Gateway v1/v2, ALB and Function URL events (the recorded ones, mutated, and raw JSON) → `lambda_http` → `lambda::prepare` → the Router | no panic; answers as above (found: lambda_http panics on a Host that is not a URL host; `lambda::replace_invalid_host` now answers such a request 400) |
//! | `dql_literal` | `string_literal`, `Timeframe`, `FilterFragment`, `Cursor` | the literal reads back as the input, in an independent tokenizer and in the sandbox's DQL parser, and cannot end early or add a command |
//! | `signed_handle` | `Signer::open` | arbitrary strings are refused; a handle round-trips; one changed byte, another kind or another key is refused |
//! | `confirmation_and_query_handle` | `send_email`'s confirmation token and `execute_dql`'s queryHandle through the Router | a changed, foreign or arbitrary token is refused and sends nothing |
//! | `configuration` | `Source::overlay_secret` and `Settings::from_source` for every front door | no panic; every error names a known variable; no secret value is ever shown |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod app;
mod config;
mod dql;
mod handles;
mod http;
mod input;
mod lambda;

/// A target: a `#[test]` that runs `$target` on bolero's inputs for `$seconds` (on stable;
/// libFuzzer decides for itself) and prints how many inputs it ran, for scripts/fuzz.sh's figures.
/// (`check!` must stand in the test function itself: cargo-bolero finds targets by their path.)
macro_rules! target {
    ($name:ident, $seconds:expr, $target:path) => {
        #[test]
        fn $name() {
            let runs = AtomicU64::new(0);
            let started = Instant::now();
            bolero::check!()
                .with_test_time(Duration::from_secs($seconds))
                .for_each(|data: &[u8]| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    $target(data)
                });
            eprintln!(
                "fuzz-figures target={} engine=random executions={} seconds={:.1} statuses: {}",
                stringify!($name),
                runs.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64(),
                app::status_counts()
            );
        }
    };
}

target!(http_request, 15, http::fuzz_one);
target!(lambda_event, 8, lambda::fuzz_one);
target!(dql_literal, 5, dql::fuzz_one);
target!(signed_handle, 4, handles::fuzz_signer);
target!(confirmation_and_query_handle, 8, handles::fuzz_tokens);
target!(configuration, 5, config::fuzz_one);

/// The characters that matter to a DQL literal, each alone and together, every run.
#[test]
fn dql_literal_edge_cases() {
    for value in [
        "",
        "\"",
        "\\",
        "\\\"",
        "\" | fetch logs",
        "\"\n| limit 1000000",
        "a\"b\\c\nd\re\tf",
        "\u{0}\u{1f}\u{7f}\u{85}\u{9f}",
        "\u{2028}\u{2029}\u{feff}",
        "\\u0022",
        "// not a comment",
        "`backticks`",
        "日本語 😀",
    ] {
        dql::check_literal(value);
    }
}
