//! Recover: a flaky step retried with its retry information, then an error handler that ends
//! the run with a fallback when the retries are used up (the reference's retry policies and
//! `@catch_error`).
//!
//! ```text
//! cargo run --example recover                  # two runs: one outage of 2 calls, one of 10
//! cargo run --example recover -- --outage 1    # one run, the service down for 1 call
//! ```
//!
//! `quote` calls a pricing service that is down for its first `--outage` calls. The step's
//! policy tries 3 times, 10 ms then 20 ms apart; each attempt reads `ctx.retry_info()` — its
//! number, the time since the first attempt, the previous attempt's error — and logs it. When
//! the third attempt fails too, the run does not fail: `fallback`, marked `#[catch_error]`,
//! receives a `StepFailedEvent` (the step, the event it failed on, the error, the attempts) and
//! returns a stop event with the last known price instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use eventflow::prelude::*;

/// What `quote` is asked for.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct QuoteRequest {
    item: String,
}

/// The run's result.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(stop)]
struct Quote {
    item: String,
    price_cents: u64,
    /// Where the price comes from: `service` or `cache`.
    source: String,
    /// What the attempts saw, one line each.
    log: Vec<String>,
}

/// A pricing service that is down for its first `outage` calls.
struct PricingService {
    outage: u32,
    calls: AtomicU32,
}

impl PricingService {
    fn price(&self, item: &str) -> Result<u64, String> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call <= self.outage {
            return Err(format!("pricing service unavailable (call {call})"));
        }
        Ok(100 + item.len() as u64)
    }
}

struct Pricing {
    service: Arc<PricingService>,
}

#[workflow]
impl Pricing {
    #[step]
    async fn ask(&self, ev: StartEvent) -> Result<QuoteRequest> {
        Ok(QuoteRequest {
            item: ev.get("item")?,
        })
    }

    #[step(retry = RetryPolicy::exponential(Duration::from_millis(10)).max_attempts(3))]
    async fn quote(&self, ctx: &Context, ev: QuoteRequest) -> Result<Quote> {
        let info = ctx.retry_info();
        let line = match &info.last_error {
            None => format!("attempt {}", info.attempt),
            Some(error) => format!(
                "attempt {} after {} ms; the last one failed: {error}",
                info.attempt,
                info.since_first_attempt.as_millis()
            ),
        };
        ctx.edit_state(|log: &mut Vec<String>| log.push(line))?;
        let price_cents = self.service.price(&ev.item)?;
        Ok(Quote {
            item: ev.item,
            price_cents,
            source: "service".into(),
            log: ctx.edit_state(|log: &mut Vec<String>| log.clone())?,
        })
    }

    #[catch_error(for_steps = ["quote"])]
    async fn fallback(&self, ctx: &Context, failed: StepFailedEvent) -> Result<Quote> {
        let request: QuoteRequest = failed.input()?;
        let line = format!(
            "`{}` failed after {} attempts: {}; the cached price is used",
            failed.step, failed.attempts, failed.error
        );
        ctx.edit_state(|log: &mut Vec<String>| log.push(line))?;
        Ok(Quote {
            item: request.item,
            price_cents: 99,
            source: "cache".into(),
            log: ctx.edit_state(|log: &mut Vec<String>| log.clone())?,
        })
    }
}

/// Runs one quote with the service down for `outage` calls.
async fn quote(outage: u32) -> anyhow::Result<Quote> {
    let service = Arc::new(PricingService {
        outage,
        calls: AtomicU32::new(0),
    });
    let workflow = Pricing { service }.into_workflow()?;
    let output = workflow.run(json!({"item": "widget"})).await?;
    output
        .into_event::<Quote>()
        .map_err(|other| anyhow::anyhow!("the run stopped with {}", other.name()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outages = match eventflow_examples::arg(&args, "outage") {
        Some(outage) => vec![outage.parse().context("--outage takes a number of calls")?],
        None => vec![2, 10],
    };
    for outage in outages {
        println!("the service is down for {outage} call(s):");
        let quote = quote(outage).await?;
        for line in &quote.log {
            println!("  {line}");
        }
        println!(
            "  => {} costs {} cents (from the {})",
            quote.item, quote.price_cents, quote.source
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_outage_is_ridden_out_by_retries() {
        let quote = quote(2).await.unwrap();
        assert_eq!(quote.source, "service");
        assert_eq!(quote.log.len(), 3);
        assert_eq!(quote.log[0], "attempt 1");
        assert!(
            quote.log[2].contains("call 2"),
            "the third attempt sees the second's error: {:?}",
            quote.log
        );
    }

    #[tokio::test]
    async fn a_long_outage_ends_with_the_fallback() {
        let quote = quote(10).await.unwrap();
        assert_eq!(quote.source, "cache");
        assert_eq!(quote.price_cents, 99);
        assert_eq!(quote.log.len(), 4);
        assert!(quote.log[3].contains("after 3 attempts"), "{:?}", quote.log);
    }
}
