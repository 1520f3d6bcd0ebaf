//! How many uploads run at once: a cap for all users together and one per user, so one
//! client (or a few) holding slow uploads open cannot take every connection, temporary file
//! or multipart upload. A slot is taken before the body is read and held until the upload's
//! task ends, whether the client stayed or not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Which cap refused an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// `API_MAX_CONCURRENT_UPLOADS`: the server is full (503).
    Server,
    /// `API_MAX_CONCURRENT_UPLOADS_PER_USER`: this user is (429).
    User,
}

/// The upload slots of one server.
#[derive(Debug)]
pub struct UploadSlots {
    all: Arc<Semaphore>,
    per_user: usize,
    users: Arc<Mutex<HashMap<String, usize>>>,
}

/// One upload's slot; released when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    _permit: OwnedSemaphorePermit,
    user: String,
    users: Arc<Mutex<HashMap<String, usize>>>,
}

impl UploadSlots {
    pub fn new(all: usize, per_user: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(all)),
            per_user,
            users: Arc::default(),
        }
    }

    /// A slot for `user`'s upload, or which cap is reached. Never waits.
    pub fn try_take(&self, user: &str) -> Result<UploadSlot, Busy> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let held = users.get(user).copied().unwrap_or(0);
        if held >= self.per_user {
            return Err(Busy::User);
        }
        let permit = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Server)?;
        users.insert(user.to_string(), held + 1);
        Ok(UploadSlot {
            _permit: permit,
            user: user.to_string(),
            users: self.users.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = users.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_then_server_caps_and_release_on_drop() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.try_take("a").map_err(|e| format!("{e:?}"));
        let a2 = slots.try_take("a").map_err(|e| format!("{e:?}"));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(slots.try_take("a").err(), Some(Busy::User));
        let b1 = slots.try_take("b");
        assert!(b1.is_ok());
        assert_eq!(slots.try_take("c").err(), Some(Busy::Server));
        assert_eq!(slots.all.available_permits(), 0);
        drop(a1);
        assert!(slots.try_take("c").is_ok(), "a released slot is free again");
        drop((a2, b1));
        assert_eq!(slots.all.available_permits(), 3);
        assert!(slots.users.lock().map(|u| u.is_empty()).unwrap_or(false));
    }
}
