//! The rundown: a show's cue groups in order, fired one by one with GO.
//!
//! `next` is the group GO fires; after GO it moves on. BACK returns to the look of the
//! group before the last one fired: that group is fired again (the world is the sum of
//! the cues that made it, so re-firing is how a live show "goes back") and becomes the
//! current one. Firing goes through the same checked inbox as any cue, so a group that
//! no longer fits the model is refused whole and the position does not move.

use cuecast_engine::{CueId, CueInbox};
use schemars::JsonSchema;
use serde::Serialize;

use crate::config::RundownItem;

#[derive(Debug, Default)]
pub struct Rundown {
    items: Vec<RundownItem>,
    /// The last group fired (by GO or BACK).
    current: Option<usize>,
}

/// Why GO or BACK did nothing.
#[derive(Debug, PartialEq)]
pub enum RundownError {
    Empty,
    Ended,
    AtStart,
    /// The group's cues were refused; nothing fired.
    Cue(cuecast_engine::CueError),
}

impl std::fmt::Display for RundownError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RundownError::Empty => f.write_str("the rundown is empty"),
            RundownError::Ended => f.write_str("the rundown has ended: nothing left to GO"),
            RundownError::AtStart => f.write_str("already at the start of the rundown"),
            RundownError::Cue(e) => write!(f, "{e}"),
        }
    }
}

impl Rundown {
    pub fn new(items: Vec<RundownItem>) -> Self {
        Rundown {
            items,
            current: None,
        }
    }

    /// A new list; the position is kept when the list is the same length (an edit of
    /// the running show's preset), else it starts over.
    pub fn replace(&mut self, items: Vec<RundownItem>) {
        if items.len() != self.items.len() {
            self.current = None;
        }
        self.items = items;
    }

    pub fn next(&self) -> usize {
        self.current.map_or(0, |c| c + 1)
    }

    /// Fires the next group.
    pub fn go(&mut self, inbox: &CueInbox) -> Result<(usize, Vec<CueId>), RundownError> {
        if self.items.is_empty() {
            return Err(RundownError::Empty);
        }
        let i = self.next();
        if i >= self.items.len() {
            return Err(RundownError::Ended);
        }
        self.fire(inbox, i)
    }

    /// Fires the group before the current one again.
    pub fn back(&mut self, inbox: &CueInbox) -> Result<(usize, Vec<CueId>), RundownError> {
        match self.current {
            None if self.items.is_empty() => Err(RundownError::Empty),
            None | Some(0) => Err(RundownError::AtStart),
            Some(c) => self.fire(inbox, c - 1),
        }
    }

    fn fire(&mut self, inbox: &CueInbox, i: usize) -> Result<(usize, Vec<CueId>), RundownError> {
        let ids = inbox
            .submit(self.items[i].cues.clone(), None)
            .map_err(|e| RundownError::Cue(e.within(&format!("rundown[{i}].cues"))))?;
        self.current = Some(i);
        Ok((i, ids))
    }

    pub fn view(&self) -> RundownView {
        RundownView {
            items: self.items.clone(),
            current: self.current,
            next: (self.next() < self.items.len()).then(|| self.next()),
        }
    }
}

/// The rundown as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RundownView {
    pub items: Vec<RundownItem>,
    /// The item GO or BACK fired last.
    pub current: Option<usize>,
    /// The item GO fires next (none past the end).
    pub next: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use cuecast_engine::world::ShowContext;
    use cuecast_engine::Cue;

    fn item(name: &str, cue: &str) -> RundownItem {
        RundownItem {
            name: name.into(),
            cues: vec![Cue::from_json(cue).unwrap()],
        }
    }

    #[test]
    fn go_fires_in_order_and_back_refires_the_previous_group() {
        let inbox = CueInbox::new(ShowContext::default());
        let mut r = Rundown::new(vec![
            item("a", r#"{"type":"freeze"}"#),
            item("b", r#"{"type":"resume"}"#),
            item("c", r#"{"type":"seed","value":3}"#),
        ]);
        assert_eq!(r.back(&inbox), Err(RundownError::AtStart));
        assert_eq!(r.go(&inbox).unwrap(), (0, vec![1]));
        assert_eq!(r.go(&inbox).unwrap(), (1, vec![2]));
        assert_eq!(r.next(), 2);
        assert_eq!(r.back(&inbox).unwrap(), (0, vec![3]));
        assert_eq!(r.next(), 1);
        r.go(&inbox).unwrap();
        r.go(&inbox).unwrap();
        assert_eq!(r.go(&inbox), Err(RundownError::Ended));
    }

    #[test]
    fn a_refused_group_does_not_move_the_rundown() {
        let inbox = CueInbox::new(ShowContext::default());
        let mut r = Rundown::new(vec![item(
            "x",
            r#"{"type":"param","name":"fog","value":1}"#,
        )]);
        let e = r.go(&inbox).unwrap_err();
        assert!(e.to_string().contains("unknown param"), "{e}");
        assert_eq!(r.next(), 0);
    }
}
