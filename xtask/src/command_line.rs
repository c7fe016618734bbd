//! How xtask shows a command it ran (in an error, mostly): the program and its arguments, and
//! the names of the environment variables xtask set for it, never any variable's value.
//!
//! `std::process::Command`'s `Debug` prints the command's environment changes with their values,
//! and a command built by `cc` clears the environment and sets every inherited variable again,
//! so its `Debug` is `env -i` followed by the whole environment: any token in it would land in a
//! CI log. Every command xtask prints goes through [`CommandLine`] instead. (xshell's `Cmd`
//! prints only the program and arguments already.)

use std::{ffi::OsStr, fmt, process::Command};

/// Displays a command as a shell line (`cd DIR && PROGRAM ARGS`, quoted where needed), then, if
/// xtask changed the environment it inherits, the names of the variables it set or removed.
/// A variable whose value equals this process's own was inherited, not set (`cc` sets them all
/// again), so it is not named.
pub(crate) struct CommandLine<'a>(pub(crate) &'a Command);

impl fmt::Display for CommandLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = self.0;
        if let Some(dir) = command.get_current_dir() {
            write!(f, "cd {} && ", quoted(dir.as_os_str()))?;
        }
        write!(f, "{}", quoted(command.get_program()))?;
        for arg in command.get_args() {
            write!(f, " {}", quoted(arg))?;
        }
        let (mut set, mut removed) = (Vec::new(), Vec::new());
        for (name, value) in command.get_envs() {
            match value {
                Some(value) if std::env::var_os(name).as_deref() != Some(value) => set.push(name.to_string_lossy()),
                Some(_) => {}
                None => removed.push(name.to_string_lossy()),
            }
        }
        if !set.is_empty() {
            write!(f, "\n  with these environment variables set by xtask (values not shown): {}", set.join(", "))?;
        }
        if !removed.is_empty() {
            write!(f, "\n  without these environment variables: {}", removed.join(", "))?;
        }
        Ok(())
    }
}

/// `word` as a POSIX shell reads it back: as it is when it holds only characters the shell leaves
/// alone, in single quotes otherwise, so a printed command can be pasted into a terminal.
fn quoted(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_shows_its_arguments_quoted_and_only_the_names_of_what_xtask_set() {
        let mut command = Command::new("clang");
        command.args(["-O2", "-o", "out dir/x.wasm", "it's.c", ""]).current_dir("/tmp/a b");
        command.env("PLUGIN_DIR", "/secret/path").env_remove("RUST_LOG");
        let shown = CommandLine(&command).to_string();
        assert_eq!(
            shown,
            "cd '/tmp/a b' && clang -O2 -o 'out dir/x.wasm' 'it'\\''s.c' ''\n  \
             with these environment variables set by xtask (values not shown): PLUGIN_DIR\n  \
             without these environment variables: RUST_LOG"
        );
    }

    #[test]
    fn an_environment_copied_whole_is_not_shown() {
        // What `cc` does: clear the environment, then set every variable to its current value.
        let mut command = Command::new("clang");
        command.env_clear().envs(std::env::vars_os());
        assert_eq!(CommandLine(&command).to_string(), "clang");
    }
}
