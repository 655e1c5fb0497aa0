//! One-line log records on stderr (journald adds the time and unit).

/// Logs `chainrouted: <level>: <message>`.
#[macro_export]
macro_rules! log {
    ($level:literal, $($arg:tt)*) => {
        eprintln!("chainrouted: {}: {}", $level, format_args!($($arg)*))
    };
}
