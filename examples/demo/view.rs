//! The live view, drawn by a thread of its own: a stalled terminal never
//! holds up the runtime the clients, the gateway and the instances run on.
//!
//! On a terminal: a progress bar and a status block that indicatif redraws
//! in place, cut to the terminal's width, with event lines printed above
//! it. Elsewhere (CI, a pipe): one line a second.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::traffic::Window;

/// What one second looked like.
pub(crate) struct Frame {
    pub(crate) elapsed: Duration,
    pub(crate) phase: String,
    pub(crate) window: Window,
    pub(crate) breakers: String,
    /// The concurrency limits the gateway has learned.
    pub(crate) limits: String,
    pub(crate) ejected: String,
    pub(crate) lines: Vec<String>,
}

pub(crate) struct View {
    frames: mpsc::Sender<Frame>,
    thread: Option<JoinHandle<()>>,
}

impl View {
    /// Starts the view's thread for a run of `total`.
    pub(crate) fn start(total: Duration) -> View {
        let (frames, received) = mpsc::channel::<Frame>();
        let thread = std::thread::spawn(move || {
            if std::io::stdout().is_terminal() {
                draw_on_terminal(total, received);
            } else {
                draw_lines(received);
            }
        });
        View {
            frames,
            thread: Some(thread),
        }
    }

    /// Shows `frame` (never waits for the terminal).
    pub(crate) fn show(&self, frame: Frame) {
        let _ = self.frames.send(frame);
    }

    /// Draws what is left and stops the thread.
    pub(crate) fn finish(mut self) {
        let (frames, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.frames, frames));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The widest line printed above the status block: wider lines would wrap
/// at 80 columns.
const LINE: usize = 79;

fn draw_on_terminal(total: Duration, frames: mpsc::Receiver<Frame>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
    // `wide_msg` fills what is left of the terminal's width, and is cut
    // there: no line of the block ever wraps, so every redraw covers the
    // last one exactly.
    let line = |template: &str| {
        let bar = multi.add(ProgressBar::new(total.as_secs()));
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("#>-"),
        );
        bar
    };
    let progress = line("[{bar:20}] {pos:>3}s/{len}s {wide_msg}");
    let traffic = line("{wide_msg}");
    let answers = line("{wide_msg}");
    let breakers = line("{wide_msg}");
    let limits = line("{wide_msg}");
    let ejected = line("{wide_msg}");
    for frame in frames {
        for text in &frame.lines {
            let text = format!("{:>6.1}s  {text}", frame.elapsed.as_secs_f64());
            let _ = multi.println(text.chars().take(LINE).collect::<String>());
        }
        let w = &frame.window;
        progress.set_position(frame.elapsed.as_secs());
        progress.set_message(frame.phase.clone());
        traffic.set_message(format!(
            "req/s {:>6}  good {:>6.2} %  p50 {:>7.1?}  p99 {:>7.1?}",
            w.requests,
            w.good_percent(),
            w.p50,
            w.p99
        ));
        answers.set_message(format!(
            "stale {:>5}  fallback {:>5}  shed {:>5}  failed {:>5}",
            w.stale, w.fallback, w.shed, w.failed
        ));
        breakers.set_message(format!("breakers: {}", frame.breakers));
        limits.set_message(format!("concurrency limits: {}", frame.limits));
        ejected.set_message(format!("ejected: {}", or_none(&frame.ejected)));
    }
    for bar in [progress, traffic, answers, breakers, limits, ejected] {
        bar.finish_and_clear();
    }
}

fn or_none(list: &str) -> &str {
    if list.is_empty() { "none" } else { list }
}

fn draw_lines(frames: mpsc::Receiver<Frame>) {
    let mut out = std::io::stdout();
    for frame in frames {
        let w = &frame.window;
        for line in &frame.lines {
            let _ = writeln!(out, "  {:>5.1}s  {line}", frame.elapsed.as_secs_f64());
        }
        let _ = writeln!(
            out,
            "{:>3}s  req/s {:>6}  good {:>6.2} %  p50 {:>7.1?}  p99 {:>7.1?}  stale {:>4}  fallback {:>4}  shed {:>4}  failed {:>4}  breakers: {}  limits: {}  ejected: {}  [{}]",
            frame.elapsed.as_secs(),
            w.requests,
            w.good_percent(),
            w.p50,
            w.p99,
            w.stale,
            w.fallback,
            w.shed,
            w.failed,
            frame.breakers,
            frame.limits,
            or_none(&frame.ejected),
            frame.phase,
        );
        let _ = out.flush();
    }
}
