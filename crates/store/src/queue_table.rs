//! Every consume queue of the store, by topic and queue id.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::consume_queue::ConsumeQueue;

/// Most queue ids accepted per topic, so a bad request cannot create millions of directories.
pub const MAX_QUEUE_ID: i32 = 65_535;

/// The consume queues, created on first use.
#[derive(Debug)]
pub struct QueueTable {
    dir: PathBuf,
    file_size_bytes: u64,
    queues: RwLock<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>>,
}

impl QueueTable {
    /// Loads every queue under `dir` (`<dir>/<topic>/<queueId>/`).
    pub fn load(dir: PathBuf, file_size_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let mut queues: HashMap<String, HashMap<i32, Arc<ConsumeQueue>>> = HashMap::new();
        for topic_entry in fs::read_dir(&dir)? {
            let topic_entry = topic_entry?;
            if !topic_entry.file_type()?.is_dir() {
                continue;
            }
            let Some(topic) = topic_entry.file_name().to_str().map(str::to_owned) else { continue };
            for queue_entry in fs::read_dir(topic_entry.path())? {
                let queue_entry = queue_entry?;
                let Some(queue_id) =
                    queue_entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok())
                else {
                    continue;
                };
                let queue = ConsumeQueue::load(&queue_entry.path(), &topic, queue_id, file_size_bytes)?;
                queues.entry(topic.clone()).or_default().insert(queue_id, Arc::new(queue));
            }
        }
        Ok(Self { dir, file_size_bytes, queues: RwLock::new(queues) })
    }

    /// The queue, if it exists.
    pub fn get(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().get(topic).and_then(|queues| queues.get(&queue_id)).cloned()
    }

    /// The queue, created when missing.
    pub fn get_or_create(&self, topic: &str, queue_id: i32) -> io::Result<Arc<ConsumeQueue>> {
        if let Some(queue) = self.get(topic, queue_id) {
            return Ok(queue);
        }
        if !(0..=MAX_QUEUE_ID).contains(&queue_id)
            || topic.is_empty()
            || topic.contains(['/', '\0'])
            || topic == ".."
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "illegal topic or queue id"));
        }
        let mut queues = self.queues.write();
        let by_id = queues.entry(topic.to_owned()).or_default();
        if let Some(queue) = by_id.get(&queue_id) {
            return Ok(Arc::clone(queue));
        }
        let path = self.dir.join(topic).join(queue_id.to_string());
        let queue = Arc::new(ConsumeQueue::load(&path, topic, queue_id, self.file_size_bytes)?);
        by_id.insert(queue_id, Arc::clone(&queue));
        Ok(queue)
    }

    /// Every queue.
    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues.read().values().flat_map(|queues| queues.values().cloned()).collect()
    }

    /// Queues of one topic.
    pub fn of_topic(&self, topic: &str) -> Vec<Arc<ConsumeQueue>> {
        self.queues.read().get(topic).map(|queues| queues.values().cloned().collect()).unwrap_or_default()
    }

    /// Topic names.
    pub fn topics(&self) -> Vec<String> {
        self.queues.read().keys().cloned().collect()
    }

    /// Deletes a topic's queues and files.
    pub fn remove_topic(&self, topic: &str) -> io::Result<()> {
        let removed = self.queues.write().remove(topic);
        for queue in removed.into_iter().flat_map(HashMap::into_values) {
            queue.destroy()?;
        }
        match fs::remove_dir(self.dir.join(topic)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                tracing::debug!(%topic, %error, "topic directory left in place")
            }
            _ => {}
        }
        Ok(())
    }
}
