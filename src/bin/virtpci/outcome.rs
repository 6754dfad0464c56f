//! What the passthrough commands say they did: one line per device (or JSON), and an exit
//! status that fails when anything asked was not done.

use virtpci::{Error, PciAddress, Result};

/// What happened to one device, as the passthrough commands print it.
pub struct DeviceOutcome {
    pub address: PciAddress,
    /// "detached", "kept", "adopted", "re-attached", "released", "recovered",
    /// "nothing-to-do", "skipped", "not-prepared", "not-re-attached".
    pub result: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The line after "ADDR: ".
    pub text: String,
    /// For a device prepared for iommufd: its VFIO device cdev (`name`, `path`, `sysfs`).
    pub cdev: Option<serde_json::Value>,
}

impl DeviceOutcome {
    /// Done: anything but a skip or a failure.
    pub fn done(&self) -> bool {
        !matches!(self.result, "skipped" | "not-prepared" | "not-re-attached")
    }
}

/// A driver name as printed: "(no driver)" for none.
pub fn shown(driver: Option<&str>) -> &str {
    driver.unwrap_or("(no driver)")
}

/// Print the outcomes (text or JSON) and turn `error` and skipped devices into the exit
/// status: an error when anything asked was not done.
pub fn report(
    json: bool,
    header: serde_json::Value,
    outcomes: &[DeviceOutcome],
    error: Option<Error>,
    what: &str,
) -> Result<()> {
    let not_done = outcomes.iter().filter(|o| !o.done()).count();
    let error = error.map(crate::cli_words).or_else(|| {
        (not_done > 0).then(|| {
            Error::operation_failed(format!(
                "{not_done} of {} devices were not {what}",
                outcomes.len()
            ))
        })
    });
    let text = if json {
        let mut doc = header;
        doc["ok"] = serde_json::json!(error.is_none());
        doc["devices"] = outcomes
            .iter()
            .map(|o| {
                let mut d = serde_json::json!({
                    "address": o.address.to_string(),
                    "result": o.result,
                    "from": o.from,
                    "to": o.to,
                    "message": o.text,
                });
                if let Some(c) = &o.cdev {
                    d["cdev"] = c.clone();
                }
                d
            })
            .collect();
        if let Some(e) = &error {
            doc["error"] = serde_json::json!(e.message);
        }
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    } else {
        outcomes
            .iter()
            .map(|o| format!("{}: {}\n", o.address, o.text))
            .collect()
    };
    crate::groups::write_stdout(&text)?;
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
