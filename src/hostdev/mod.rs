//! The hostdev manager: which domain owns which host PCI device, and the moves that give
//! devices to guests and back, as libvirt's virHostdevPreparePCIDevices and
//! virHostdevReAttachPCIDevices do them, plus virtpci's whole-group rule (every non-bridge
//! member of a hostdev's IOMMU group declared by the domain, perhaps hidden from the guest;
//! docs/decisions.md) and safeguards libvirt lacks: each move confirmed, any failure rolled
//! back, the book crash-safe.
//!
//! # The API in brief
//! * [`HostdevManager::new`]`(host, state_dir)`: a manager for a [`Host`] whose lists live in
//!   `state_dir` (see [`state`]). Several managers (threads, processes) may share a directory.
//! * [`HostdevManager::prepare_pci_devices`]: checks (device exists, is an endpoint, is not
//!   used by anyone, no member of its IOMMU group is used by another domain, every non-bridge
//!   member of the group is declared by this domain unless
//!   [`PrepareOptions::legacy_group_check`], unmanaged devices are on a stub, nothing the host
//!   needs is detached unless [`PrepareOptions::force`]); then detach
//!   the managed devices and **confirm** each one reached its stub; reset by libvirt's rules;
//!   book them active. Any failure puts every device back exactly where it was.
//! * [`HostdevManager::reattach_pci_devices`]: unbook, reset, and give managed devices back
//!   to their original driver and `driver_override`, confirming they arrived. All or nothing.
//! * [`HostdevManager::update_active_pci_devices`]: reconcile the book with a running domain.
//! * Node-device calls: [`HostdevManager::node_device_detach`], `_reattach`, `_reset`.
//! * [`HostdevManager::check`]: the dry run.
//!
//! Every call takes parsed [`HostdevSpec`]s, as libvirt's virhostdev takes its domain model:
//! callers read a definition's with [`crate::xml::hostdevs::hostdevs_from_domain_xml`].
//!
//! # Drivers, modules and iommufd
//! Each managed hostdev gets the VFIO driver [`Host::choose_vfio_driver`] picks from
//! modules.alias (or the one `<driver model>` forces, or the VFIO driver it is on already); the
//! report says which and why. Prepare loads a missing driver's module before anything moves
//! (`Host::ensure_driver_loaded`); an iommufd hostdev must, once bound, have its VFIO device
//! cdev ([`Host::vfio_cdev`]), or everything is put back. Re-attach warns about a device that
//! came back in D3cold or reading all ones.
//!
//! # Crash safety
//! The book is saved before sysfs is touched: prepare first records every device it will move
//! as an *interrupted* active entry of the domain, with its original driver and override; then
//! it moves them; then it saves the final book. A process killed in between leaves those
//! entries on disk, so the devices stay owned (no other domain can take them or their group)
//! and the domain's next re-attach returns each one to where it was, whatever step the crash
//! interrupted: every move starts from what sysfs says now. Re-attach changes the book only
//! after every device arrived, so a crash there leaves the devices booked and a retry finishes.
//!
//! # VF network interfaces
//! An `<interface type='hostdev'>` must be an SR-IOV VF whose PF has a netdev (see [`net`]).
//! When it asks for a MAC or a VLAN, prepare reads what the PF holds for the VF and saves it in
//! the VF's intent entry (`saved_net`) before anything changes, sets the domain's after the
//! devices reached their stub, and re-attach (or a rollback) restores what was saved before
//! giving the device back. Only hosts whose writer keeps VF MAC/VLANs (the simulated kernel)
//! can; elsewhere such a VF is refused before anything changes.

pub mod book;
pub mod critical;
pub mod group_fix;
pub mod moves;
pub mod net;
pub mod plan;
pub mod state;
pub mod status;

pub use book::{ActiveEntry, BookEntry, DeviceState, HeldDevice, Owner, OwnershipBook, SavedNet};
pub use critical::{CriticalUse, HostUsage, ProcUsage, StaticUsage};
pub use moves::{ResetCapability, ResetOutcome, ResetTimings};
pub use plan::{Action, CheckReport, GroupCheck, GroupMember, HostdevCheck};

use crate::error::{Error, Result};
use crate::host::{Host, VfNet};
use crate::pci::PciAddress;
use crate::xml::hostdevs::HostdevSpec;
use state::{StateLock, StateStore};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// How prepare (and its dry run) checks a domain's hostdevs. The default is virtpci's: every
/// member of a hostdev's IOMMU group must be declared, and devices the host needs stay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Only refuse a group whose members another domain uses (libvirt 9.0's rule), instead of
    /// requiring every member of the group to be declared by the domain.
    pub legacy_group_check: bool,
    /// Detach devices the host needs (a mounted filesystem's disk, the default route's NIC).
    pub force: bool,
}

/// Where warnings go (libvirt logs them: failed resets during re-attach, failed rollbacks).
pub(crate) type Logger = Arc<dyn Fn(&str) + Send + Sync>;

/// The manager. See the module documentation. `Send + Sync`: every operation holds the lists'
/// mutex (and the state directory's lock) for its whole duration, as libvirt holds its list
/// locks.
pub struct HostdevManager {
    host: Arc<Host>,
    store: StateStore,
    usage: Box<dyn HostUsage>,
    timings: ResetTimings,
    logger: Option<Logger>,
    lists: Mutex<OwnershipBook>,
}

impl fmt::Debug for HostdevManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostdevManager")
            .field("root", &self.host.root())
            .field("state_dir", &self.store.dir())
            .finish()
    }
}

/// The warnings of one operation, kept until its locks are released.
#[derive(Default)]
struct Notes(std::cell::RefCell<Vec<String>>);

impl Notes {
    fn warn(&self, message: String) {
        self.0.borrow_mut().push(message);
    }
}

/// One operation's hold on the book: the mutex, the directory lock, the book as on disk.
struct Session<'a> {
    book: MutexGuard<'a, OwnershipBook>,
    _lock: StateLock,
    store: &'a StateStore,
}

impl Session<'_> {
    /// Save `new` as the next generation, then make it the book in memory.
    fn commit(&mut self, mut new: OwnershipBook) -> Result<()> {
        new.generation = self.book.generation + 1;
        self.store.save(&new)?;
        *self.book = new;
        Ok(())
    }

    /// Save `new` when its lists differ from the book's.
    fn commit_if_changed(&mut self, new: OwnershipBook) -> Result<()> {
        if new.lists() != self.book.lists() {
            self.commit(new)
        } else {
            Ok(())
        }
    }
}

impl HostdevManager {
    /// A manager for `host` keeping its lists in `state_dir` (created, mode 0700, if missing).
    /// The lists saved there by an earlier manager, live or dead, are taken over. Mounts and
    /// routes are read from the host's proc directory, and resets wait or not, as the host's
    /// [`Environment`](crate::host::Environment) says (a simulated kernel keeps its own).
    pub fn new(host: Arc<Host>, state_dir: &Path) -> Result<HostdevManager> {
        let env = host.environment().clone();
        let usage: Box<dyn HostUsage> = Box::new(ProcUsage::under(&env.proc_dir));
        let store = StateStore::open(state_dir)?;
        let book = {
            let _lock = store.lock()?;
            store.load()?
        };
        Ok(HostdevManager {
            host,
            store,
            usage,
            timings: if env.reset_waits {
                ResetTimings::LIBVIRT
            } else {
                ResetTimings::NONE
            },
            logger: None,
            lists: Mutex::new(book),
        })
    }

    /// Read mounts and routes from `usage` instead.
    pub fn with_usage(mut self, usage: Box<dyn HostUsage>) -> HostdevManager {
        self.usage = usage;
        self
    }

    pub fn with_reset_timings(mut self, timings: ResetTimings) -> HostdevManager {
        self.timings = timings;
        self
    }

    pub fn with_logger(mut self, logger: Logger) -> HostdevManager {
        self.logger = Some(logger);
        self
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn state_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Run one operation, then give its warnings to the logger. The operation's session (the
    /// list mutex and the directory's flock) ends inside `op`, so the logger runs with no lock
    /// held and may call the manager again (a daemon's log callback does).
    fn logged<T>(&self, op: impl FnOnce(&Notes) -> Result<T>) -> Result<T> {
        let notes = Notes::default();
        let result = op(&notes);
        if let Some(l) = &self.logger {
            for message in notes.0.into_inner() {
                l(&message);
            }
        }
        result
    }

    fn session(&self) -> Result<Session<'_>> {
        // A panic while holding the mutex cannot leave a half-changed book behind: the book
        // is reloaded from disk here.
        let mut book = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let lock = self.store.lock()?;
        *book = self.store.load()?;
        Ok(Session {
            book,
            _lock: lock,
            store: &self.store,
        })
    }

    /// The session of a node-device call on `addr`, which must exist and be used by no domain.
    fn unused_device_session(&self, addr: &PciAddress) -> Result<Session<'_>> {
        let s = self.session()?;
        if !self.host.device_exists(addr)? {
            return Err(plan::missing_device_error(&self.host, addr));
        }
        if let Some(a) = s.book.active_entry(addr) {
            return Err(book::held_error(addr, a));
        }
        Ok(s)
    }

    /// Both lists as saved now.
    pub fn book(&self) -> Result<OwnershipBook> {
        Ok(self.session()?.book.clone())
    }

    /// Every device the manager holds (both lists), as saved now.
    pub(crate) fn held_devices(&self) -> Result<Vec<HeldDevice>> {
        Ok(self.session()?.book.held_devices())
    }

    /// The dry run of prepare: every check, nothing changed. Fails only when sysfs or the
    /// state cannot be read or the request is malformed; violations are in the report.
    pub fn check(
        &self,
        drv_name: &str,
        dom_name: &str,
        hostdevs: &[HostdevSpec],
        options: PrepareOptions,
    ) -> Result<CheckReport> {
        let owner = Owner::checked(drv_name, dom_name)?;
        let s = self.session()?;
        plan::check(&self.host, &s.book, &*self.usage, &owner, hostdevs, options)
    }

    /// libvirt's virHostdevPreparePCIDevices; see the module documentation.
    pub fn prepare_pci_devices(
        &self,
        drv_name: &str,
        dom_name: &str,
        uuid: Option<&[u8; 16]>,
        hostdevs: &[HostdevSpec],
        options: PrepareOptions,
    ) -> Result<()> {
        let owner = Owner::checked(drv_name, dom_name)?;
        if hostdevs.is_empty() {
            return Ok(());
        }
        self.logged(|notes| {
            let mut s = self.session()?;
            let uuid = uuid.map(crate::xml::hostdevs::format_uuid);
            let report = plan::check(&self.host, &s.book, &*self.usage, &owner, hostdevs, options)?;
            if let Some(v) = report.violations.first() {
                return Err(v.clone());
            }
            let before = s.book.clone();
            let moving: Vec<&HostdevCheck> = report.detaching().collect();
            // The drivers' modules, before anything moves: a module that fails to load leaves
            // every device where it was (a loaded module stays loaded, as with libvirt).
            for h in &moving {
                if let Some(module) = &h.load_module {
                    self.host.ensure_driver_loaded(&h.stub, module)?;
                }
            }
            // VF network interfaces: what the PF holds now (saved), and what to set.
            let nets = net::plan_net_changes(&self.host, hostdevs)?;
            let active_entry =
                |h: &HostdevCheck, entry: BookEntry, interrupted: bool| ActiveEntry {
                    entry,
                    owner: owner.clone(),
                    uuid: uuid.clone(),
                    unassigned: h.unassigned,
                    interrupted,
                    saved_net: nets
                        .iter()
                        .find(|n| n.vf == h.source)
                        .map(|n| n.saved.clone()),
                };

            // The intent: the devices about to move or whose MAC/VLAN is about to change,
            // with where they are now (and the MAC/VLAN to restore).
            let touched: Vec<&HostdevCheck> = report
                .hostdevs
                .iter()
                .filter(|h| {
                    moving.iter().any(|m| m.source == h.source)
                        || nets.iter().any(|n| n.vf == h.source)
                })
                .collect();
            if !touched.is_empty() {
                let mut intent = before.clone();
                for h in &touched {
                    let entry = intent
                        .take_inactive(&h.source)
                        .unwrap_or_else(|| moved_entry(h));
                    intent.active.push(active_entry(h, entry, true));
                }
                s.commit(intent)?;
            }

            let host = &*self.host;
            let run = || -> Result<()> {
                for h in &moving {
                    moves::bind_to_stub(host, &h.source, &h.stub)?;
                }
                for h in &report.hostdevs {
                    moves::confirm_driver(host, &h.source, Some(&h.stub))?;
                    if h.iommufd {
                        host.vfio_cdev(&h.source)?;
                    }
                }
                for n in &nets {
                    host.set_vf_net(&n.saved.pf, n.saved.index, n.wanted)?;
                }
                // Reset as libvirt does, while every device sits in the inactive list.
                let mut resetting = before.clone();
                for h in &report.hostdevs {
                    if !resetting.is_inactive(&h.source) {
                        resetting.inactive.push(moved_entry(h));
                    }
                }
                for h in &report.hostdevs {
                    moves::reset(host, &h.source, &resetting, self.timings).inspect_err(|e| {
                        notes.warn(format!("Failed to reset PCI device: {}", e.message))
                    })?;
                }
                Ok(())
            };
            let result = run().and_then(|()| {
                let mut done = before.clone();
                for h in &report.hostdevs {
                    let entry = match done.take_inactive(&h.source) {
                        Some(e) => e,
                        None => moved_entry(h),
                    };
                    done.active.push(active_entry(h, entry, false));
                }
                s.commit(done)
            });
            if let Err(e) = result {
                self.undo_prepare(notes, &mut s, &before, &touched, &active_entry);
                return Err(e);
            }
            Ok(())
        })
    }

    /// Put every moved device back where it was and the book back as it was. A device that
    /// cannot be put back stays booked as interrupted, for the domain's re-attach to retry.
    fn undo_prepare(
        &self,
        notes: &Notes,
        s: &mut Session<'_>,
        before: &OwnershipBook,
        moving: &[&HostdevCheck],
        active_entry: &dyn Fn(&HostdevCheck, BookEntry, bool) -> ActiveEntry,
    ) {
        let mut after = before.clone();
        for h in moving.iter().rev() {
            // A device that left the host (sysfs `remove`) cannot be put back and belongs to
            // nobody: booking it would block it for other domains after a rescan.
            if !self.host.device_exists(&h.source).unwrap_or(true) {
                continue;
            }
            let entry = active_entry(h, moved_entry(h), true);
            let net_back = match &entry.saved_net {
                Some(saved) => net::restore_saved(&self.host, saved),
                None => Ok(()),
            };
            let moved_back = moves::restore(&self.host, &h.source, &h.current);
            if let Err(e) = net_back.and(moved_back) {
                notes.warn(format!("Failed to re-attach PCI device: {}", e.message));
                after.active.push(entry);
            }
        }
        if let Err(e) = s.commit_if_changed(after) {
            notes.warn(format!(
                "Failed to save the hostdev state after a rollback: {}",
                e.message
            ));
        }
    }

    /// libvirt's virHostdevReAttachPCIDevices, all or nothing: devices the domain owns (and
    /// interrupted entries it left) are unbooked, reset, and — when managed — returned to their
    /// original driver and override and confirmed there. Devices of other domains are not
    /// touched. Hostdevs whose device left the host are forgotten. On failure every device is
    /// put back on its stub, the book is unchanged, and the error names the device.
    pub fn reattach_pci_devices(
        &self,
        drv_name: &str,
        dom_name: &str,
        hostdevs: &[HostdevSpec],
    ) -> Result<()> {
        plan::check_duplicates(hostdevs)?;
        let owner = Owner::checked(drv_name, dom_name)?;
        self.logged(|notes| {
            let mut s = self.session()?;
            let before = s.book.clone();
            let mut after = before.clone();
            let mut targets: Vec<ActiveEntry> = Vec::new();
            for h in hostdevs {
                if !self.host.device_exists(&h.source)? {
                    after.forget(&h.source);
                    continue;
                }
                if after
                    .active_entry(&h.source)
                    .is_some_and(|a| a.owner == owner)
                {
                    targets.extend(after.take_active(&h.source));
                }
            }
            while let Some(i) = after
                .active
                .iter()
                .position(|a| a.owner == owner && a.interrupted)
            {
                targets.push(after.active.remove(i));
            }
            for t in targets.iter().filter(|t| !t.interrupted) {
                after.inactive.push(t.entry.clone());
            }
            for t in targets.iter().filter(|t| !t.interrupted) {
                if let Err(e) = moves::reset(&self.host, &t.entry.address, &after, self.timings) {
                    notes.warn(format!("Failed to reset PCI device: {}", e.message));
                }
            }
            // Where each device is before re-attach moves it, to put it back on failure.
            let mut returned: Vec<(&BookEntry, DeviceState)> = Vec::new();
            let mut failure: Option<Error> = None;
            // First the MAC and VLAN each VF's PF held before prepare (libvirt restores the
            // net config before giving the device back); again on a retry.
            let mut nets_back: Vec<(&SavedNet, VfNet)> = Vec::new();
            for saved in targets.iter().filter_map(|t| t.saved_net.as_ref()) {
                let restored = self
                    .host
                    .vf_net(&saved.pf, saved.index)
                    .and_then(|prior| {
                        nets_back.push((saved, prior));
                        net::restore_saved(&self.host, saved)
                    });
                if let Err(err) = restored {
                    failure = Some(err);
                    break;
                }
            }
            for t in targets.iter().filter(|_| failure.is_none()) {
                let e = &t.entry;
                if t.interrupted {
                    if let Some(orig) = &e.original {
                        if let Err(err) = moves::restore(&self.host, &e.address, orig) {
                            failure = Some(err);
                            break;
                        }
                    }
                    continue;
                }
                if !e.managed {
                    continue;
                }
                let prior = match moves::current(&self.host, &e.address) {
                    Ok(p) => p,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                };
                returned.push((e, prior));
                let moved = match &e.original {
                    Some(orig) => moves::restore(&self.host, &e.address, orig),
                    None => moves::release_to_host(&self.host, &e.address, &e.stub),
                };
                if let Err(err) = moved {
                    failure = Some(err);
                    break;
                }
                after.take_inactive(&e.address);
            }
            let result = match failure {
                Some(err) => Err(err),
                None => s.commit_if_changed(after),
            };
            if result.is_ok() {
                for (e, _) in &returned {
                    warn_if_unresponsive(&self.host, &e.address, notes);
                }
            }
            if let Err(err) = result {
                for (e, prior) in returned.iter().rev() {
                    if let Err(b) = moves::restore(&self.host, &e.address, prior) {
                        notes.warn(format!(
                            "Failed to return PCI device {} to {} after a failed re-attach: {}",
                            e.address, e.stub, b.message
                        ));
                    }
                }
                for (saved, prior) in nets_back.iter().rev() {
                    if let Err(b) = self.host.set_vf_net(&saved.pf, saved.index, *prior) {
                        notes.warn(format!(
                            "Failed to give VF {} of PF {} its MAC and VLAN back after a failed re-attach: {}",
                            saved.index, saved.pf, b.message
                        ));
                    }
                }
                return Err(err);
            }
            Ok(())
        })
    }

    /// Rebuild the book for a running domain (libvirt's virHostdevUpdateActivePCIDevices, after
    /// a daemon restart), reconciling with what was saved: listed devices not yet booked are
    /// booked to the domain (a missing device is an error, another owner too); devices already
    /// booked to it keep their original drivers; devices booked to it but no longer listed
    /// move to the inactive list (still on the stub, owned by nobody).
    pub fn update_active_pci_devices(
        &self,
        drv_name: &str,
        dom_name: &str,
        hostdevs: &[HostdevSpec],
    ) -> Result<()> {
        plan::check_duplicates(hostdevs)?;
        let owner = Owner::checked(drv_name, dom_name)?;
        self.logged(|notes| {
            let mut s = self.session()?;
            let mut after = s.book.clone();
            for h in hostdevs {
                let stub = plan::stub_for(h)?;
                if !self.host.device_exists(&h.source)? {
                    return Err(plan::missing_device_error(&self.host, &h.source));
                }
                let on_stub = self
                    .host
                    .driver(&h.source)?
                    .as_deref()
                    .is_some_and(moves::is_vfio_driver);
                if let Some(a) = after
                    .active
                    .iter_mut()
                    .find(|a| a.entry.address == h.source)
                {
                    if a.owner != owner {
                        return Err(book::held_error(&h.source, a));
                    }
                    // A running domain uses it, so an interrupted prepare did finish its moves.
                    if a.interrupted && on_stub {
                        a.interrupted = false;
                    }
                    a.unassigned = h.unassigned;
                    continue;
                }
                if !on_stub {
                    notes.warn(format!(
                        "PCI device {} is booked for domain {dom_name} but is not bound to a vfio driver",
                        h.source
                    ));
                }
                let entry = after.take_inactive(&h.source).unwrap_or(BookEntry {
                    address: h.source,
                    stub,
                    managed: h.managed,
                    unbind_from_stub: h.managed,
                    original: None,
                    since: book::now_since(),
                });
                after.active.push(ActiveEntry {
                    entry,
                    owner: owner.clone(),
                    uuid: None,
                    unassigned: h.unassigned,
                    interrupted: false,
                    saved_net: after
                        .active_entry(&h.source)
                        .and_then(|a| a.saved_net.clone()),
                });
            }
            let listed: Vec<PciAddress> = hostdevs.iter().map(|h| h.source).collect();
            while let Some(i) = after
                .active
                .iter()
                .position(|a| a.owner == owner && !a.interrupted && !listed.contains(&a.entry.address))
            {
                let a = after.active.remove(i);
                after.inactive.push(a.entry);
            }
            s.commit_if_changed(after)
        })
    }

    /// libvirt's virHostdevPCINodeDeviceDetach: bind the device to its stub (`driver` as in
    /// [`HostdevSpec::driver`]) and keep it in the inactive list, unmanaged. Refused for a
    /// device in use, and for a device the host needs unless `force`.
    pub fn node_device_detach(
        &self,
        addr: &PciAddress,
        driver: Option<&str>,
        force: bool,
    ) -> Result<()> {
        addr.check_ranges()?;
        let spec = HostdevSpec {
            driver: driver.map(str::to_string),
            ..HostdevSpec::unmanaged(*addr)
        };
        let stub = plan::stub_for(&spec)?;
        self.logged(|notes| {
            let mut s = self.unused_device_session(addr)?;
            let before = s.book.clone();
            let now = moves::current(&self.host, addr)?;
            if now.driver.as_deref() != Some(stub.as_str()) {
                if !force {
                    if let Some(why) =
                        critical::critical_devices(&self.host, &*self.usage)?.get(addr)
                    {
                        return Err(critical::critical_error(addr, why));
                    }
                }
                self.host
                    .ensure_driver_loaded(&stub, &crate::host::modules::module_of_driver(&stub))?;
            }
            let mut intent = before.clone();
            if !intent.is_inactive(addr) {
                intent.inactive.push(BookEntry {
                    address: *addr,
                    stub: stub.clone(),
                    managed: false,
                    unbind_from_stub: now.driver.as_deref() != Some(stub.as_str()),
                    original: Some(now.clone()),
                    since: book::now_since(),
                });
            }
            s.commit_if_changed(intent)?;
            let moved = moves::bind_to_stub(&self.host, addr, &stub)
                .and_then(|_| moves::confirm_driver(&self.host, addr, Some(&stub)));
            if let Err(e) = moved {
                match moves::restore(&self.host, addr, &now) {
                    Ok(()) => {
                        if let Err(c) = s.commit_if_changed(before) {
                            notes.warn(format!("Failed to save the hostdev state: {}", c.message));
                        }
                    }
                    Err(r) => notes.warn(format!("Failed to re-attach PCI device: {}", r.message)),
                }
                return Err(e);
            }
            Ok(())
        })
    }

    /// libvirt's virHostdevPCINodeDeviceReAttach: give a device that no domain uses back to its
    /// host driver, even one virtpci did not detach (the unbind is forced), and forget it.
    pub fn node_device_reattach(&self, addr: &PciAddress) -> Result<()> {
        addr.check_ranges()?;
        self.logged(|notes| {
            let mut s = self.unused_device_session(addr)?;
            let entry = s.book.inactive_entry(addr).cloned();
            let now = moves::current(&self.host, addr)?;
            let original = entry
                .as_ref()
                .and_then(|e| e.original.clone())
                .filter(|o| !o.driver.as_deref().is_some_and(moves::is_vfio_driver));
            let moved = match original {
                Some(orig) => moves::restore(&self.host, addr, &orig),
                None => match now.driver.as_deref().filter(|d| moves::is_vfio_driver(d)) {
                    Some(d) => moves::release_to_host(&self.host, addr, d),
                    None if now.driver_override.is_some() && entry.is_some() => {
                        self.host.set_driver_override(addr, None)
                    }
                    None => Ok(()),
                },
            };
            if let Err(e) = moved {
                // Back where it was, still in the inactive list: the call may be retried.
                if let Err(r) = moves::restore(&self.host, addr, &now) {
                    notes.warn(format!(
                        "Failed to return PCI device {addr} to {} after a failed re-attach: {}",
                        now.driver.as_deref().unwrap_or("no driver"),
                        r.message
                    ));
                }
                return Err(e);
            }
            let mut after = s.book.clone();
            after.take_inactive(addr);
            s.commit_if_changed(after)?;
            warn_if_unresponsive(&self.host, addr, notes);
            Ok(())
        })
    }

    /// libvirt's virHostdevPCINodeDeviceReset: reset a device no domain uses, by libvirt's
    /// rules (nothing for VFIO-bound or FLR-capable devices, else PM, else secondary bus reset
    /// when nothing else on the bus is in use).
    pub fn node_device_reset(&self, addr: &PciAddress) -> Result<ResetOutcome> {
        addr.check_ranges()?;
        let s = self.session()?;
        if !self.host.device_exists(addr)? {
            return Err(plan::missing_device_error(&self.host, addr));
        }
        moves::reset(&self.host, addr, &s.book, self.timings)
    }
}

/// After a device went back to the host: warn, naming it, when it seems gone (left in D3cold,
/// or answering all-ones config space), as the next user of the device will fail.
fn warn_if_unresponsive(host: &Host, addr: &PciAddress, notes: &Notes) {
    if let Ok(Some(why)) = host.unresponsive(addr) {
        notes.warn(format!(
            "PCI device {addr} was given back to the host, but {why}: it may need a reset or a rescan"
        ));
    }
}

/// The book entry for a device prepare takes: moved by virtpci (managed, remembers where it
/// was) or taken as it is (already on the stub, or unmanaged).
fn moved_entry(h: &HostdevCheck) -> BookEntry {
    BookEntry {
        address: h.source,
        stub: h.stub.clone(),
        managed: h.managed,
        unbind_from_stub: matches!(h.action, Action::Detach { .. }),
        original: Some(h.current.clone()),
        since: book::now_since(),
    }
}
