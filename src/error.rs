//! The one error type of virtpci: a code and a message, worded as libvirt words them.
//!
//! Codes reuse libvirt's `virErrorNumber` values where libvirt has the same error, so a daemon
//! can map them one to one. The list is append-only: a value, once published, never changes.

use crate::limits::{MAX_MESSAGE_BYTES, MAX_QUOTED_INPUT_BYTES};
use std::fmt;

/// Error codes. Explicit values, append-only; identical to libvirt's `virErrorNumber` where the
/// meaning is the same.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No error.
    Ok = 0,
    /// A bug or an unexpected state (VIR_ERR_INTERNAL_ERROR). Also what a caught panic becomes.
    Internal = 1,
    /// Memory allocation failed (VIR_ERR_NO_MEMORY).
    NoMemory = 2,
    /// A bad argument: NULL pointer, non-UTF-8 string, malformed name (VIR_ERR_INVALID_ARG).
    InvalidArg = 8,
    /// An operation was attempted and did not succeed (VIR_ERR_OPERATION_FAILED).
    OperationFailed = 9,
    /// Malformed or semantically wrong XML (VIR_ERR_XML_ERROR).
    XmlError = 27,
    /// A detail of the XML libvirt's parser refuses, printed without a prefix
    /// (VIR_ERR_XML_DETAIL).
    XmlDetail = 35,
    /// A system call failed; the message ends with the `strerror` text (VIR_ERR_SYSTEM_ERROR).
    SystemError = 38,
    /// The request is not valid in the current state (VIR_ERR_OPERATION_INVALID).
    OperationInvalid = 55,
    /// The configuration is well-formed but not supported (VIR_ERR_CONFIG_UNSUPPORTED).
    ConfigUnsupported = 67,
    /// The operation is not supported (VIR_ERR_OPERATION_UNSUPPORTED).
    OperationUnsupported = 84,
    /// A device that was asked for does not exist (VIR_ERR_DEVICE_MISSING).
    DeviceMissing = 99,
}

impl ErrorCode {
    /// The prefix libvirt's `virerror.c` puts in front of a message of this code.
    pub fn prefix(self) -> &'static str {
        match self {
            ErrorCode::Ok => "",
            ErrorCode::Internal => "internal error: ",
            ErrorCode::NoMemory => "out of memory: ",
            ErrorCode::InvalidArg => "invalid argument: ",
            ErrorCode::OperationFailed => "operation failed: ",
            ErrorCode::XmlError => "XML error: ",
            ErrorCode::XmlDetail => "",
            ErrorCode::SystemError => "",
            ErrorCode::OperationInvalid => "Requested operation is not valid: ",
            ErrorCode::ConfigUnsupported => "unsupported configuration: ",
            ErrorCode::OperationUnsupported => "Operation not supported: ",
            ErrorCode::DeviceMissing => "device not found: ",
        }
    }
}

/// An error: its code and the full message, prefix included, exactly as libvirt would print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    /// An error of `code` whose detail is `detail`; the libvirt prefix of the code is added.
    pub fn new(code: ErrorCode, detail: impl AsRef<str>) -> Error {
        Error {
            code,
            message: bounded_message(format!("{}{}", code.prefix(), detail.as_ref())),
        }
    }

    /// The message without the code's prefix.
    pub fn detail(&self) -> &str {
        self.message
            .strip_prefix(self.code.prefix())
            .unwrap_or(&self.message)
    }

    /// The same error with `context` (say "device 2") put after libvirt's prefix, so the
    /// message still starts as libvirt's do: "XML error: device 2: ...".
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error::new(self.code, format!("{context}: {}", self.detail()))
    }

    pub fn internal(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::Internal, detail)
    }

    pub fn xml(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::XmlError, detail)
    }

    pub(crate) fn xml_detail(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::XmlDetail, detail)
    }

    pub fn invalid_arg(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::InvalidArg, detail)
    }

    pub(crate) fn config_unsupported(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::ConfigUnsupported, detail)
    }

    pub fn operation_invalid(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::OperationInvalid, detail)
    }

    pub fn operation_failed(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::OperationFailed, detail)
    }

    pub fn device_missing(detail: impl AsRef<str>) -> Error {
        Error::new(ErrorCode::DeviceMissing, detail)
    }

    /// A failed system call, worded as `virReportSystemError`: the detail, then `: strerror`.
    pub fn system(detail: impl AsRef<str>, err: &std::io::Error) -> Error {
        Error::new(
            ErrorCode::SystemError,
            format!("{}: {}", detail.as_ref(), strerror_text(err)),
        )
    }
}

/// `input` as a message quotes it: whole when short, else its first
/// [`MAX_QUOTED_INPUT_BYTES`] bytes (cut at a character boundary) and `...`, so that a huge
/// string given by a caller never makes a huge message. Every message that repeats input uses
/// it: `format!("PCI address '{}'", quote(text))`.
pub fn quote(input: &str) -> Quoted<'_> {
    Quoted(input)
}

/// Input shown in a message, see [`quote`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= MAX_QUOTED_INPUT_BYTES {
            return f.write_str(self.0);
        }
        f.write_str(prefix_within(self.0, MAX_QUOTED_INPUT_BYTES))?;
        f.write_str("...")
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends at a character boundary.
fn prefix_within(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `message` cut to [`MAX_MESSAGE_BYTES`] (ending in `...` when cut): the last guard, for a
/// message that quotes input without [`quote`]. Applied to every [`Error`] made by
/// [`Error::new`] and to every message that reaches C.
pub(crate) fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let keep = prefix_within(&message, MAX_MESSAGE_BYTES - 3).len();
        message.truncate(keep);
        message.push_str("...");
    }
    message
}

/// The C library's wording of an I/O error, without Rust's " (os error N)" suffix.
fn strerror_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_libvirt_numbers() {
        assert_eq!(ErrorCode::Internal as i32, 1);
        assert_eq!(ErrorCode::InvalidArg as i32, 8);
        assert_eq!(ErrorCode::XmlError as i32, 27);
        assert_eq!(ErrorCode::XmlDetail as i32, 35);
        assert_eq!(ErrorCode::OperationInvalid as i32, 55);
        assert_eq!(ErrorCode::ConfigUnsupported as i32, 67);
        assert_eq!(ErrorCode::DeviceMissing as i32, 99);
    }

    #[test]
    fn messages_carry_libvirt_prefixes() {
        assert_eq!(
            Error::xml("Invalid PCI address function=0x8, must be <= 7").message,
            "XML error: Invalid PCI address function=0x8, must be <= 7"
        );
        assert_eq!(
            Error::internal("No more available PCI slots").message,
            "internal error: No more available PCI slots"
        );
        assert_eq!(
            Error::operation_invalid("x").message,
            "Requested operation is not valid: x"
        );
        assert_eq!(
            Error::config_unsupported("x").message,
            "unsupported configuration: x"
        );
    }

    #[test]
    fn quoted_input_is_cut_at_a_character_boundary() {
        assert_eq!(quote("0000:00:01.0").to_string(), "0000:00:01.0");
        let exact = "a".repeat(MAX_QUOTED_INPUT_BYTES);
        assert_eq!(quote(&exact).to_string(), exact);
        let long = "a".repeat(MAX_QUOTED_INPUT_BYTES + 1);
        assert_eq!(quote(&long).to_string(), format!("{exact}..."));
        // A two-byte character across the cut is left out whole.
        let wide = format!("{}é", "a".repeat(MAX_QUOTED_INPUT_BYTES - 1));
        assert_eq!(
            quote(&wide).to_string(),
            format!("{}...", &wide[..MAX_QUOTED_INPUT_BYTES - 1])
        );
    }

    #[test]
    fn messages_are_bounded_and_context_follows_the_prefix() {
        let e = Error::xml("é".repeat(MAX_MESSAGE_BYTES));
        assert!(e.message.len() <= MAX_MESSAGE_BYTES, "{}", e.message.len());
        assert!(e.message.starts_with("XML error: é") && e.message.ends_with("é..."));
        let short = Error::xml("x");
        assert_eq!(short.message, "XML error: x");
        assert_eq!(short.detail(), "x");
        assert_eq!(short.context("device 0").message, "XML error: device 0: x");
        let system = Error::system("open '/x'", &std::io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(
            system.context("state").message,
            "state: open '/x': Input/output error"
        );
    }

    #[test]
    fn system_errors_end_with_strerror() {
        let e = Error::system(
            "Failed to open '/x'",
            &std::io::Error::from_raw_os_error(libc::ENOENT),
        );
        assert_eq!(e.code, ErrorCode::SystemError);
        assert_eq!(e.message, "Failed to open '/x': No such file or directory");
    }
}
