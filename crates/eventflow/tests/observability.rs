//! Verbose mode and tracing: what a run tells about itself.

use std::io::Write;
use std::sync::{Arc, Mutex};

use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
struct Middle {
    n: u32,
}

fn two_steps() -> Workflow {
    Workflow::builder("observed")
        .add_step("first", |ev: StartEvent| async move {
            Ok::<_, BoxError>(Middle { n: ev.get("n")? })
        })
        .add_step(
            "second",
            |ev: Middle| async move { StopEvent::new(ev.n + 1) },
        )
        .build()
        .unwrap()
}

/// A `Write` that appends to a shared buffer, for the subscriber's output.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn runs_and_steps_are_traced_with_their_ids() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime keeps every task on this thread, under this subscriber.
    let run_id = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let handler = two_steps().run(json!({"n": 1}));
            let run_id = handler.run_id().to_owned();
            handler.await.unwrap();
            run_id
        })
    });
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let step_line = log
        .lines()
        .find(|line| line.contains("step finished") && line.contains("step=second"))
        .unwrap_or_else(|| panic!("no step line in:\n{log}"));
    assert!(
        step_line.contains(&format!("run_id={run_id}")),
        "{step_line}"
    );
    assert!(step_line.contains("workflow=observed"), "{step_line}");
    assert!(step_line.contains("event=Middle"), "{step_line}");
    assert!(step_line.contains("attempt=1"), "{step_line}");
    assert!(log.contains("run finished"), "{log}");
}

/// Runs the workflow in verbose mode, printing to stdout. Ignored because it checks nothing
/// itself: `verbose_mode_prints_each_step_and_the_result` runs it in a child process (with
/// `--ignored --exact`) and checks what it printed.
#[tokio::test]
#[ignore = "a child process of verbose_mode_prints_each_step_and_the_result, run by it"]
async fn verbose_child() {
    two_steps()
        .verbose(true)
        .run(json!({"n": 41}))
        .await
        .unwrap();
}

/// Verbose mode prints to the process's stdout, which the harness would capture, so the run
/// happens in a child process (the ignored `verbose_child`) whose stdout is read here.
#[test]
fn verbose_mode_prints_each_step_and_the_result() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "verbose_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    // The harness prints "test verbose_child ... " before the first line without a newline.
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains("] step") || line.contains("] run"))
        .collect();
    // The child did run (a filter matching nothing also exits successfully).
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(
        lines[0].ends_with("step `first` started on StartEvent (attempt 1)"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("step `first` finished in") && lines[1].ends_with("-> Middle"),
        "{stdout}"
    );
    assert!(
        lines[2].ends_with("step `second` started on Middle (attempt 1)"),
        "{stdout}"
    );
    assert!(lines[3].ends_with("-> StopEvent"), "{stdout}");
    assert!(
        lines[4].ends_with(r#"run finished: StopEvent({"result":42})"#),
        "{stdout}"
    );
}
