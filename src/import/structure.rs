//! The format-2 part of `import`: an item's type, parent, close reason and comments, read from
//! the file and settled once every item is in (parents must exist and never loop; comments are
//! merged by identity, so importing twice adds nothing).

use std::collections::HashSet;

use ulid::Ulid;

use super::{invalid, Merge};
use crate::clock::parse_rfc3339;
use crate::error::Result;
use crate::json::ItemJson;
use crate::model::{Change, Comment, ItemType, OpKind};
use crate::rules;
use crate::store::Storage;

type Structure = (ItemType, Option<Ulid>, Option<String>, Vec<Comment>);

/// The format-2 fields of an exported item (absent in format 1: a task, no parent, no reason,
/// no comments).
pub(super) fn parse_structure(j: &ItemJson, id: Ulid) -> std::result::Result<Structure, String> {
    let item_type = ItemType::parse(&j.item_type).ok_or_else(|| {
        format!(
            "type {:?}: use task, bug, feature, chore or epic",
            j.item_type
        )
    })?;
    let parent = match &j.parent_id {
        Some(p) => {
            let p =
                Ulid::from_string(p).map_err(|e| format!("parent {p:?} is not a ULID ({e})"))?;
            if p == id {
                return Err("it is its own parent".into());
            }
            Some(p)
        }
        None => None,
    };
    let close_reason = match &j.close_reason {
        Some(r) => Some(rules::validate_reason(r)?),
        None => None,
    };
    let mut comments: Vec<Comment> = Vec::new();
    for c in j.comments.iter().flatten() {
        let cid = Ulid::from_string(&c.id)
            .map_err(|e| format!("comment {:?} is not a ULID ({e})", c.id))?;
        let at = parse_rfc3339(&c.at)
            .ok_or_else(|| format!("comment {cid}: time {:?} is not RFC 3339", c.at))?;
        let text = rules::validate_comment(&c.text).map_err(|e| format!("comment {cid}: {e}"))?;
        if comments.iter().any(|x| x.id == cid) {
            return Err(format!("comment {cid} appears twice"));
        }
        comments.push(Comment {
            id: cid,
            author: c.author.clone(),
            at,
            text,
        });
    }
    if comments.len() > crate::model::MAX_COMMENTS_PER_ITEM {
        return Err(format!(
            "{} comments, more than the {} an item may carry",
            comments.len(),
            crate::model::MAX_COMMENTS_PER_ITEM
        ));
    }
    Ok((item_type, parent, close_reason, comments))
}

impl<S: Storage> Merge<'_, S> {
    /// Parents must exist (in the file or here) and never loop; comments not here yet are
    /// appended, each by one op, keeping their identity, author and time.
    pub(super) fn settle_structure(&mut self) -> Result<()> {
        for (id, comments) in std::mem::take(&mut self.structured) {
            let Some(item) = self.t.item(id)? else {
                continue;
            };
            if let Some(p) = item.parent {
                if self.t.item(p)?.is_none() {
                    return Err(invalid(format!(
                        "item {id} is part of {p}, which is neither in the file nor here"
                    )));
                }
                if crate::mutate::parent_loops(&*self.t, id, p)? {
                    return Err(invalid(format!(
                        "item {id}'s parent {p} is part of it (a cycle)"
                    )));
                }
            }
            let have: HashSet<Ulid> = crate::tracker::comments_of(&*self.t, id)?
                .into_iter()
                .map(|c| c.id)
                .collect();
            let new: Vec<Change> = comments
                .into_iter()
                .filter(|c| !have.contains(&c.id))
                .map(|comment| Change::Commented { comment })
                .collect();
            if have.len() + new.len() > crate::model::MAX_COMMENTS_PER_ITEM {
                return Err(invalid(format!(
                    "item {id} would carry more than {} comments",
                    crate::model::MAX_COMMENTS_PER_ITEM
                )));
            }
            if !new.is_empty() {
                let lease = self.t.lease(id)?;
                self.tracker
                    .commit(self.t, self.now, OpKind::Comment, Some(&item), lease, new)?;
            }
        }
        Ok(())
    }
}
