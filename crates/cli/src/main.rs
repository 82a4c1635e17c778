//! `arca`, the command-line tool: parses arguments, asks `arca-core` to do the work, and
//! reports the outcome. No format or crypto logic lives here.

mod app;
mod commands;
mod exit;
mod output;
mod password;
mod progress;
mod storage;

fn main() -> std::process::ExitCode {
    app::run()
}
