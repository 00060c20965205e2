//! The learner actor: a thin message loop around [`Learner`]. After each update it publishes the
//! new weights to the inference actor, so later rollouts use them.

use std::path::PathBuf;

use actix::prelude::*;
use crossbeam_channel::Sender;

use super::inference::InferenceMsg;
use crate::faults::LearnerFaults;
use crate::metrics as m;
use crate::search::Episode;
use crate::train::driver::TrainState;
use crate::train::learner::{Learner, UpdateReport};

pub struct LearnerActor {
    learner: Learner,
    /// Where new weights go; if the inference actor is gone the run is ending anyway.
    inference: Sender<InferenceMsg>,
    /// Injected learner faults and the retry of a failed update.
    faults: LearnerFaults,
}

impl LearnerActor {
    pub fn new(learner: Learner, inference: Sender<InferenceMsg>, faults: LearnerFaults) -> Self {
        Self {
            learner,
            inference,
            faults,
        }
    }
}

impl Actor for LearnerActor {
    type Context = SyncContext<Self>;
}

/// Update on one step's episodes; answers with the report and the new version.
#[derive(Message)]
#[rtype(result = "Result<(UpdateReport, u64), String>")]
pub struct Train(pub Vec<Episode>);

impl Handler<Train> for LearnerActor {
    type Result = Result<(UpdateReport, u64), String>;
    fn handle(&mut self, msg: Train, _: &mut SyncContext<Self>) -> Self::Result {
        metrics::gauge!(m::QUEUE_DEPTH, "role" => "learner").decrement(1);
        let before = self.learner.version;
        let report = self
            .faults
            .update(&mut self.learner, &msg.0)
            .map_err(|e| e.to_string())?;
        if self.learner.version != before {
            let weights = self.learner.policy.snapshot().map_err(|e| e.to_string())?;
            let version = self.learner.version;
            let _ = self
                .inference
                .send(InferenceMsg::Publish { version, weights });
            metrics::gauge!(m::POLICY_VERSION, "role" => "learner").set(version as f64);
        }
        Ok((report, self.learner.version))
    }
}

/// Write a checkpoint of the learner's weights and optimizer into a folder.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainState,
}

impl Handler<Checkpoint> for LearnerActor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: Checkpoint, _: &mut SyncContext<Self>) -> Self::Result {
        let state = serde_json::to_value(&msg.state).map_err(|e| e.to_string())?;
        self.learner
            .policy
            .save_checkpoint(&msg.dir, &self.learner.optimizer, &state)
            .map_err(|e| e.to_string())
    }
}
