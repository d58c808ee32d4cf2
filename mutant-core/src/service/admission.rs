//! Admission of analyses on one server: at most `in_flight` compute at
//! once; the others wait in a first-come, first-served queue. A job joins
//! the queue when it is started (synchronously, so the queue keeps the
//! order of the starts), waits for its turn without holding a thread, and
//! leaves the queue when it is cancelled while it waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use uuid::Uuid;

/// The queue and the slots of one server.
#[derive(Debug)]
pub(super) struct Admission {
    state: Mutex<AdmissionState>,
    /// Woken whenever a slot frees or the head of the queue changes.
    changed: Notify,
}

#[derive(Debug)]
struct AdmissionState {
    in_flight: usize,
    running: usize,
    /// Jobs waiting for a slot, oldest first.
    queue: VecDeque<Uuid>,
}

impl Admission {
    /// Admission with `in_flight` slots (at least one).
    pub(super) fn new(in_flight: usize) -> Arc<Self> {
        Arc::new(Admission {
            state: Mutex::new(AdmissionState {
                in_flight: in_flight.max(1),
                running: 0,
                queue: VecDeque::new(),
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, AdmissionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a job at the end of the queue. Dropping the ticket before it
    /// was admitted takes the job out of the queue.
    pub(super) fn enqueue(self: &Arc<Self>, job: Uuid) -> Ticket {
        self.state().queue.push_back(job);
        Ticket {
            admission: Arc::clone(self),
            job,
            admitted: false,
        }
    }

    /// How many jobs compute now, and how many wait.
    pub(super) fn counts(&self) -> (usize, usize) {
        let state = self.state();
        (state.running, state.queue.len())
    }
}

/// A job's place in the queue.
#[derive(Debug)]
pub(super) struct Ticket {
    admission: Arc<Admission>,
    job: Uuid,
    admitted: bool,
}

impl Ticket {
    /// Waits until the job is at the head of the queue and a slot is free,
    /// then takes the slot; the slot is given back when the returned
    /// [`Slot`] is dropped. Cancel-safe: dropping the future leaves the
    /// ticket in the queue, and dropping the ticket leaves the queue.
    pub(super) async fn admitted(&mut self) -> Slot {
        loop {
            let changed = self.admission.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the look at the queue, so that a change
            // between the look and the wait still wakes this waiter.
            changed.as_mut().enable();
            {
                let mut state = self.admission.state();
                if state.running < state.in_flight && state.queue.front() == Some(&self.job) {
                    state.queue.pop_front();
                    state.running += 1;
                    self.admitted = true;
                    // The next in line may be admitted too.
                    self.admission.changed.notify_waiters();
                    return Slot {
                        admission: Arc::clone(&self.admission),
                    };
                }
            }
            changed.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        let mut state = self.admission.state();
        if let Some(position) = state.queue.iter().position(|job| *job == self.job) {
            state.queue.remove(position);
        }
        drop(state);
        self.admission.changed.notify_waiters();
    }
}

/// A slot to compute in, held for as long as the job computes.
#[derive(Debug)]
pub(super) struct Slot {
    admission: Arc<Admission>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.state().running -= 1;
        self.admission.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether the future finishes within a short wait.
    async fn finishes<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .ok()
    }

    #[tokio::test]
    async fn jobs_run_at_most_in_flight_at_once_and_in_the_order_they_came() {
        let admission = Admission::new(2);
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let mut tickets: Vec<Ticket> = ids.iter().map(|id| admission.enqueue(*id)).collect();
        // The fourth cannot pass the third, even with a slot free later.
        let first = finishes(tickets[0].admitted()).await.expect("a free slot");
        let second = finishes(tickets[1].admitted()).await.expect("a free slot");
        assert_eq!(admission.counts(), (2, 2));
        assert!(finishes(tickets[3].admitted()).await.is_none());
        assert!(finishes(tickets[2].admitted()).await.is_none());
        drop(first);
        assert!(finishes(tickets[3].admitted()).await.is_none());
        let third = finishes(tickets[2].admitted()).await.expect("a freed slot");
        assert_eq!(admission.counts(), (2, 1));
        drop((second, third));
        assert!(finishes(tickets[3].admitted()).await.is_some());
        assert_eq!(admission.counts(), (0, 0));
    }

    #[tokio::test]
    async fn a_dropped_ticket_leaves_the_queue_and_lets_the_next_in() {
        let admission = Admission::new(1);
        let mut running = admission.enqueue(Uuid::new_v4());
        let slot = finishes(running.admitted()).await.expect("a free slot");
        let cancelled = admission.enqueue(Uuid::new_v4());
        let mut next = admission.enqueue(Uuid::new_v4());
        assert_eq!(admission.counts(), (1, 2));
        drop(cancelled);
        assert_eq!(admission.counts(), (1, 1));
        let waiting = tokio::spawn(async move {
            let _slot = next.admitted().await;
        });
        drop(slot);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the next job is admitted once the slot frees")
            .expect("the waiting task ran");
        assert_eq!(admission.counts(), (0, 0));
    }
}
