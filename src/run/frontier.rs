//! The run's frontier: which instances still wait on dependencies, which are ready to be
//! evaluated, which are queued to run (taken in topological order), which run, and which
//! finished, failed or are blocked by a failure upstream. Twins (instances with the same cache
//! key) are parked while one of them is queued or running, then evaluated again, to find its
//! result in the cache. Pure bookkeeping, no cache and no threads, so it is tested on its own,
//! as cargo keeps its `DependencyQueue` apart from the driver.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

/// Where one instance stands; `T` is what a finished instance gives its dependents.
#[derive(Debug, Clone)]
enum State<T> {
    /// Waiting on dependencies, ready to evaluate, parked, or queued.
    Pending,
    /// Handed to a worker.
    Running,
    /// Done (ran or cached), with its outputs.
    Finished(T),
    /// Failed (its attempts are spent, or an input is missing).
    Failed,
    /// Not run: a dependency failed.
    Blocked,
}

/// The scheduling state of one run over a DAG of instances `0..n`.
#[derive(Debug)]
pub struct Frontier<'a, T> {
    dependents: &'a [Vec<usize>],
    /// Each instance's place in the topological order: the ready heap's priority.
    position: Vec<usize>,
    state: Vec<State<T>>,
    /// Dependencies not finished yet, per instance.
    waiting_on: Vec<usize>,
    to_evaluate: VecDeque<usize>,
    ready: BinaryHeap<Reverse<(usize, usize)>>,
    /// The key each queued or running instance holds, and the holder of each such key.
    key_of: HashMap<usize, String>,
    holder: HashMap<String, usize>,
    /// Instances waiting for a key's holder to end.
    parked: HashMap<String, Vec<usize>>,
}

impl<'a, T> Frontier<'a, T> {
    /// A frontier over instances in topological `order`, `dependents[i]` depending directly on
    /// `i`; those without dependencies are ready to evaluate, in that order.
    pub fn new(order: &[usize], dependents: &'a [Vec<usize>]) -> Self {
        let n = dependents.len();
        let mut position = vec![0; n];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut waiting_on = vec![0; n];
        for &d in dependents.iter().flatten() {
            waiting_on[d] += 1;
        }
        let to_evaluate = order
            .iter()
            .copied()
            .filter(|&i| waiting_on[i] == 0)
            .collect();
        Frontier {
            dependents,
            position,
            state: (0..n).map(|_| State::Pending).collect(),
            waiting_on,
            to_evaluate,
            ready: BinaryHeap::new(),
            key_of: HashMap::new(),
            holder: HashMap::new(),
            parked: HashMap::new(),
        }
    }

    /// The next instance whose dependencies are all finished, to evaluate (key and cache).
    pub fn next_to_evaluate(&mut self) -> Option<usize> {
        self.to_evaluate.pop_front()
    }

    /// Every instance whose dependencies are all finished, in the order
    /// [`next_to_evaluate`](Self::next_to_evaluate) gives them: a wave that can be evaluated
    /// together, since none depends on another.
    pub fn take_to_evaluate(&mut self) -> Vec<usize> {
        self.to_evaluate.drain(..).collect()
    }

    /// What finished instance `i` gives its dependents; `None` until it finishes.
    pub fn outputs(&self, i: usize) -> Option<&T> {
        match &self.state[i] {
            State::Finished(outputs) => Some(outputs),
            _ => None,
        }
    }

    /// Queues evaluated instance `i` to run under `key`, and returns true; or, when a twin
    /// already holds `key`, parks `i` until the twin ends and returns false.
    pub fn enqueue(&mut self, i: usize, key: &str) -> bool {
        if self.holder.contains_key(key) {
            self.parked.entry(key.to_owned()).or_default().push(i);
            return false;
        }
        self.holder.insert(key.to_owned(), i);
        self.key_of.insert(i, key.to_owned());
        self.ready.push(Reverse((self.position[i], i)));
        true
    }

    /// The queued instance first in topological order, without taking it.
    pub fn peek_ready(&self) -> Option<usize> {
        self.ready.peek().map(|&Reverse((_, i))| i)
    }

    /// Takes the queued instance first in topological order and marks it running.
    pub fn start(&mut self) -> Option<usize> {
        let Reverse((_, i)) = self.ready.pop()?;
        self.state[i] = State::Running;
        Some(i)
    }

    /// Marks `i` finished with `outputs` (it ran, or its result was cached); its twins are
    /// evaluated again, then the dependents it was the last unfinished dependency of.
    pub fn finish(&mut self, i: usize, outputs: T) {
        self.release_key(i);
        self.state[i] = State::Finished(outputs);
        for &d in &self.dependents[i] {
            self.waiting_on[d] -= 1;
            if self.waiting_on[d] == 0 && matches!(self.state[d], State::Pending) {
                self.to_evaluate.push_back(d);
            }
        }
    }

    /// Marks `i` failed and every pending instance downstream of it blocked; returns those,
    /// nearest first. Its twins are evaluated again (and run themselves); other branches go on.
    pub fn fail(&mut self, i: usize) -> Vec<usize> {
        self.release_key(i);
        self.state[i] = State::Failed;
        let mut seen = vec![false; self.state.len()];
        let mut stack: VecDeque<usize> = self.dependents[i].iter().copied().collect();
        let mut blocked = Vec::new();
        while let Some(d) = stack.pop_front() {
            if std::mem::replace(&mut seen[d], true) {
                continue;
            }
            if matches!(self.state[d], State::Pending) {
                self.state[d] = State::Blocked;
                blocked.push(d);
            }
            stack.extend(&self.dependents[d]);
        }
        blocked
    }

    /// Puts running instance `i` back to pending (the run was interrupted); its twins are
    /// released too, so nothing stays parked behind it.
    pub fn cancel(&mut self, i: usize) {
        self.release_key(i);
        self.state[i] = State::Pending;
    }

    /// Whether nothing is left to evaluate or queued (running instances aside).
    pub fn is_drained(&self) -> bool {
        self.to_evaluate.is_empty() && self.ready.is_empty()
    }

    /// Instances not finished, failed or blocked: pending or running.
    pub fn not_finished(&self) -> usize {
        self.state
            .iter()
            .filter(|s| matches!(s, State::Pending | State::Running))
            .count()
    }

    /// Frees the key `i` held, and sends its parked twins back to evaluation.
    fn release_key(&mut self, i: usize) {
        if let Some(key) = self.key_of.remove(&i) {
            self.holder.remove(&key);
            if let Some(twins) = self.parked.remove(&key) {
                self.to_evaluate.extend(twins);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates every instance ready now, queueing each under the key `key(i)`.
    fn evaluate_all(f: &mut Frontier<'_, u32>, key: impl Fn(usize) -> String) -> Vec<usize> {
        let mut seen = Vec::new();
        while let Some(i) = f.next_to_evaluate() {
            seen.push(i);
            f.enqueue(i, &key(i));
        }
        seen
    }

    fn own_key(i: usize) -> String {
        format!("k{i}")
    }

    #[test]
    fn a_diamond_runs_its_join_only_after_both_branches() {
        // 0 → 1, 0 → 2, 1 → 3, 2 → 3
        let dependents = vec![vec![1, 2], vec![3], vec![3], vec![]];
        let mut f = Frontier::new(&[0, 1, 2, 3], &dependents);
        assert_eq!(evaluate_all(&mut f, own_key), [0]);
        assert_eq!(f.start(), Some(0));
        assert!(f.is_drained());
        f.finish(0, 10);
        assert_eq!(f.outputs(0), Some(&10));
        assert_eq!(evaluate_all(&mut f, own_key), [1, 2]);
        assert_eq!((f.start(), f.start(), f.start()), (Some(1), Some(2), None));
        f.finish(2, 12);
        assert_eq!(f.next_to_evaluate(), None, "3 still waits on 1");
        f.finish(1, 11);
        assert_eq!(evaluate_all(&mut f, own_key), [3]);
        assert_eq!(f.not_finished(), 1);
        assert_eq!(f.start(), Some(3));
        f.finish(3, 13);
        assert_eq!(f.not_finished(), 0);
        assert!(f.is_drained());
    }

    #[test]
    fn a_wave_is_everything_evaluable_now_in_order_and_nothing_twice() {
        // 0 → 2, 1 → 2, 2 → 3, 2 → 4; the order puts 1 before 0.
        let dependents = vec![vec![2], vec![2], vec![3, 4], vec![], vec![]];
        let mut f: Frontier<'_, u32> = Frontier::new(&[1, 0, 2, 4, 3], &dependents);
        assert_eq!(f.take_to_evaluate(), [1, 0]);
        assert_eq!(f.take_to_evaluate(), Vec::<usize>::new(), "taken once");
        f.finish(1, 11);
        assert_eq!(f.take_to_evaluate(), Vec::<usize>::new(), "2 waits on 0");
        f.finish(0, 10);
        assert_eq!(f.take_to_evaluate(), [2]);
        f.finish(2, 12);
        assert_eq!(
            f.take_to_evaluate(),
            [3, 4],
            "released in dependents' order"
        );
    }

    #[test]
    fn queued_instances_start_in_topological_order_not_in_queueing_order() {
        // Three roots; the order puts 2 first, then 0, then 1.
        let dependents = vec![vec![], vec![], vec![]];
        let mut f: Frontier<'_, u32> = Frontier::new(&[2, 0, 1], &dependents);
        let mut evaluated = Vec::new();
        while let Some(i) = f.next_to_evaluate() {
            evaluated.push(i);
        }
        assert_eq!(evaluated, [2, 0, 1]);
        for i in [1, 0, 2] {
            assert!(f.enqueue(i, &own_key(i)));
        }
        assert_eq!(f.peek_ready(), Some(2));
        assert_eq!(
            [f.start(), f.start(), f.start()],
            [Some(2), Some(0), Some(1)]
        );
    }

    #[test]
    fn a_twin_waits_for_the_holder_of_its_key_then_is_evaluated_again() {
        // 0 → 1, 0 → 2; 1 and 2 have the same key, 3 is independent.
        let dependents = vec![vec![1, 2], vec![], vec![], vec![]];
        let same = |i: usize| {
            if i == 1 || i == 2 {
                "twin".into()
            } else {
                own_key(i)
            }
        };
        let mut f = Frontier::new(&[0, 1, 2, 3], &dependents);
        evaluate_all(&mut f, same);
        assert_eq!((f.start(), f.start()), (Some(0), Some(3)));
        f.finish(0, 0);
        assert_eq!(evaluate_all(&mut f, same), [1, 2]);
        assert_eq!(
            (f.start(), f.start()),
            (Some(1), None),
            "2 is parked, not queued"
        );
        assert!(f.is_drained());
        assert_eq!(f.not_finished(), 3, "1 running, 2 parked, 3 running");
        f.finish(1, 1);
        assert_eq!(
            f.next_to_evaluate(),
            Some(2),
            "the twin comes back to find 1's result"
        );
        f.finish(2, 1);
        f.finish(3, 3);
        assert_eq!(f.not_finished(), 0);
    }

    #[test]
    fn a_failure_blocks_only_its_descendants() {
        // 0 → 1 → 2 → 3, 1 → 3, 0 → 4 → 5
        let dependents = vec![vec![1, 4], vec![2, 3], vec![3], vec![], vec![5], vec![]];
        let mut f = Frontier::new(&[0, 1, 2, 3, 4, 5], &dependents);
        evaluate_all(&mut f, own_key);
        f.start();
        f.finish(0, 0);
        assert_eq!(evaluate_all(&mut f, own_key), [1, 4]);
        assert_eq!((f.start(), f.start()), (Some(1), Some(4)));
        let blocked = f.fail(1);
        assert_eq!(blocked, [2, 3], "each descendant once, nearest first");
        assert_eq!(f.outputs(2), None);
        f.finish(4, 4);
        assert_eq!(
            evaluate_all(&mut f, own_key),
            [5],
            "the other branch goes on"
        );
        f.start();
        f.finish(5, 5);
        assert_eq!(
            f.not_finished(),
            0,
            "failed and blocked instances are settled"
        );
        assert!(f.is_drained());
    }

    #[test]
    fn a_failed_holder_sends_its_twin_back_to_run_itself() {
        // Two roots with the same key: when the first one fails, the second is not blocked
        // (it is no descendant) but evaluated again, so it gets its own attempts.
        let dependents = vec![vec![], vec![]];
        let mut f: Frontier<'_, u32> = Frontier::new(&[0, 1], &dependents);
        evaluate_all(&mut f, |_| "same".into());
        assert_eq!((f.start(), f.start()), (Some(0), None));
        assert!(f.fail(0).is_empty());
        assert_eq!(f.next_to_evaluate(), Some(1));
        assert!(f.enqueue(1, "same"), "the key is free again");
        assert_eq!(f.start(), Some(1));
    }

    #[test]
    fn an_interrupted_instance_is_pending_again_and_frees_its_key() {
        let dependents = vec![vec![1], vec![], vec![]];
        let mut f: Frontier<'_, u32> = Frontier::new(&[0, 1, 2], &dependents);
        evaluate_all(&mut f, |i| if i == 1 { own_key(1) } else { "same".into() });
        assert_eq!(
            (f.start(), f.start()),
            (Some(0), None),
            "2 is parked behind 0"
        );
        f.cancel(0);
        assert_eq!(f.not_finished(), 3);
        assert_eq!(
            f.next_to_evaluate(),
            Some(2),
            "nothing stays parked behind a cancelled key"
        );
        assert_eq!(f.next_to_evaluate(), None, "0's dependents still wait");
    }
}
