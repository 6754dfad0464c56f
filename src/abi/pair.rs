//! Pairing the devices of two definitions by identity (the rounds are in the module
//! documentation of [`crate::abi`]).

use super::layout::{Entry, Key};

/// A rule saying two entries are the same device.
type SameDevice = dyn Fn(&Entry, &Entry) -> bool;

/// A pairing of old and new entries (indexes into each layout's `entries`).
pub(super) type Pair = (Option<usize>, Option<usize>);

/// Pair the devices of two layouts by identity (see the module documentation).
pub(super) fn pair_entries(old: &[Entry], new: &[Entry]) -> Vec<(Option<usize>, Option<usize>)> {
    let mut old_taken = vec![false; old.len()];
    let mut new_taken = vec![false; new.len()];
    let mut pairs: Vec<Pair> = Vec::new();
    let mut link = |o: usize, n: usize, ot: &mut Vec<bool>, nt: &mut Vec<bool>| {
        ot[o] = true;
        nt[n] = true;
        pairs.push((Some(o), Some(n)));
    };
    // PCI controllers.
    let pci_rounds: [&SameDevice; 4] = [
        &|a, b| a.key(0).is_some() && a.key(0) == b.key(0),
        &|a, b| {
            let (x, y) = (
                a.pci_controller.as_ref().unwrap(),
                b.pci_controller.as_ref().unwrap(),
            );
            x.index == y.index && x.model == y.model
        },
        &|a, b| {
            a.pci_controller.as_ref().unwrap().model == b.pci_controller.as_ref().unwrap().model
                && a.address.is_pci()
                && a.address.pci().map(|p| p.0) == b.address.pci().map(|p| p.0)
        },
        &|a, b| {
            a.pci_controller.as_ref().unwrap().index == b.pci_controller.as_ref().unwrap().index
        },
    ];
    for round in pci_rounds {
        for o in 0..old.len() {
            if old_taken[o] || old[o].pci_controller.is_none() {
                continue;
            }
            let found = (0..new.len()).find(|&n| {
                !new_taken[n] && new[n].pci_controller.is_some() && round(&old[o], &new[n])
            });
            if let Some(n) = found {
                link(o, n, &mut old_taken, &mut new_taken);
            }
        }
    }
    // Other devices: identity keys, round by round.
    for round in 0..Key::ROUNDS {
        for o in 0..old.len() {
            if old_taken[o] || old[o].pci_controller.is_some() {
                continue;
            }
            let Some(key) = unique_key(old, o, round) else {
                continue;
            };
            let found = (0..new.len()).find(|&n| {
                !new_taken[n]
                    && new[n].pci_controller.is_none()
                    && new[n].tag == old[o].tag
                    && unique_key(new, n, round) == Some(key)
            });
            if let Some(n) = found {
                link(o, n, &mut old_taken, &mut new_taken);
            }
        }
    }
    // The rest by kind: the same address first, then in order.
    for same_address in [true, false] {
        for o in 0..old.len() {
            if old_taken[o] || old[o].pci_controller.is_some() {
                continue;
            }
            let found = (0..new.len()).find(|&n| {
                !new_taken[n]
                    && new[n].pci_controller.is_none()
                    && new[n].kind == old[o].kind
                    && (!same_address || new[n].address == old[o].address)
                    // Two devices with different identities of the same kind are different.
                    && !keys_conflict(&old[o], &new[n])
            });
            if let Some(n) = found {
                link(o, n, &mut old_taken, &mut new_taken);
            }
        }
    }
    for (o, taken) in old_taken.iter().enumerate() {
        if !taken {
            pairs.push((Some(o), None));
        }
    }
    for (n, taken) in new_taken.iter().enumerate() {
        if !taken {
            pairs.push((None, Some(n)));
        }
    }
    pairs
}

/// The key of `round` of `entries[i]`, unless another device of the same element has it too
/// (two NICs with one MAC identify nothing).
fn unique_key(entries: &[Entry], i: usize, round: usize) -> Option<&Key> {
    let key = entries[i].key(round)?;
    let shared = entries
        .iter()
        .enumerate()
        .any(|(j, e)| j != i && e.tag == entries[i].tag && e.key(round) == Some(key));
    (!shared).then_some(key)
}

/// Both devices have a key of the same kind, with different values.
fn keys_conflict(a: &Entry, b: &Entry) -> bool {
    (0..Key::ROUNDS).any(|r| matches!((a.key(r), b.key(r)), (Some(x), Some(y)) if x != y))
}
