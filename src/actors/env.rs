//! The environment actor: owns the real environments of the episodes assigned to it and steps or
//! forks them on request. Search actors reach it through [`RemoteEnv`], an `EnvHandle` that turns
//! each call into a message and waits for the answer.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use actix::prelude::*;

use crate::env::{ParsedReply, TaskEnv, TaskKind, TurnResult, TurnRules};
use crate::faults::{Dice, Supervision, maybe_panic};
use crate::search::{EnvHandle, SampleError};

pub struct EnvActor {
    /// A fresh environment of the run's task; each episode starts from a clone of it.
    template: TaskEnv,
    /// The live environment of every open episode, by episode id. An entry is removed by
    /// `Close`; if the actor restarts, the map starts empty and `RemoteEnv` reports the loss.
    envs: HashMap<u64, TaskEnv>,
    /// Injected panics per step (`faults.env_panic_p`) and the die that decides them.
    panic_p: f64,
    dice: Dice,
    /// Where restarts are counted.
    supervision: Arc<Supervision>,
}

impl EnvActor {
    pub fn new(template: TaskEnv, panic_p: f64, dice: Dice, supervision: Arc<Supervision>) -> Self {
        Self {
            template,
            envs: HashMap::new(),
            panic_p,
            dice,
            supervision,
        }
    }

    /// Run a handler's body; if it panics, drop every environment (their state may be damaged)
    /// and stop, so the supervisor restarts this actor clean. A panic must not unwind out of a
    /// handler: it would take the whole arbiter thread down with it.
    fn guarded<T: Default>(
        &mut self,
        ctx: &mut Context<Self>,
        body: impl FnOnce(&mut Self) -> T,
    ) -> T {
        match catch_unwind(AssertUnwindSafe(|| body(self))) {
            Ok(out) => out,
            Err(_) => {
                tracing::warn!(
                    lost = self.envs.len(),
                    "environment actor panicked; restarting it"
                );
                self.envs.clear();
                ctx.stop();
                T::default()
            }
        }
    }
}

impl Actor for EnvActor {
    type Context = Context<Self>;
}

impl Supervised for EnvActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.envs.clear();
        self.supervision.env_restarted();
    }
}

/// Start episode `id` on instance `seed`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Open {
    pub id: u64,
    pub seed: u64,
}

/// The observation text of episode `id`.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct Observe(pub u64);

/// Play a parsed reply on episode `id`.
#[derive(Message)]
#[rtype(result = "Option<TurnResult>")]
pub struct Play {
    pub id: u64,
    pub reply: ParsedReply,
    pub actions_used: usize,
    pub rules: TurnRules,
}

/// The actions available now in episode `id` (they change with the page in WebShop).
#[derive(Message)]
#[rtype(result = "Option<Vec<String>>")]
pub struct Actions(pub u64);

impl Handler<Actions> for EnvActor {
    type Result = Option<Vec<String>>;
    fn handle(&mut self, msg: Actions, _: &mut Context<Self>) -> Option<Vec<String>> {
        self.envs.get(&msg.0).map(crate::env::Env::action_names)
    }
}

/// A fork of episode `id` (a clone, RNG included).
#[derive(Message)]
#[rtype(result = "Option<TaskEnv>")]
pub struct Fork(pub u64);

/// Episode `id` is over; drop its environment.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close(pub u64);

impl Handler<Open> for EnvActor {
    type Result = ();
    fn handle(&mut self, msg: Open, ctx: &mut Context<Self>) {
        self.guarded(ctx, |me| {
            let mut env = me.template.clone();
            crate::env::Env::reset(&mut env, msg.seed);
            me.envs.insert(msg.id, env);
        })
    }
}

impl Handler<Observe> for EnvActor {
    type Result = Option<String>;
    fn handle(&mut self, msg: Observe, ctx: &mut Context<Self>) -> Option<String> {
        self.guarded(ctx, |me| {
            me.envs.get(&msg.0).map(crate::env::Env::observation)
        })
    }
}

impl Handler<Play> for EnvActor {
    type Result = Option<TurnResult>;
    fn handle(&mut self, msg: Play, ctx: &mut Context<Self>) -> Option<TurnResult> {
        self.guarded(ctx, |me| {
            maybe_panic(&mut me.dice, me.panic_p, "environment actor");
            let env = me.envs.get_mut(&msg.id)?;
            Some(crate::env::play_turn(
                env,
                &msg.reply,
                msg.actions_used,
                &msg.rules,
            ))
        })
    }
}

impl Handler<Fork> for EnvActor {
    type Result = Option<TaskEnv>;
    fn handle(&mut self, msg: Fork, ctx: &mut Context<Self>) -> Option<TaskEnv> {
        self.guarded(ctx, |me| me.envs.get(&msg.0).cloned())
    }
}

impl Handler<Close> for EnvActor {
    type Result = ();
    fn handle(&mut self, msg: Close, _: &mut Context<Self>) {
        self.envs.remove(&msg.0);
    }
}

/// The search actor's view of an episode living in an environment actor.
pub struct RemoteEnv {
    addr: Addr<EnvActor>,
    id: u64,
    kind: TaskKind,
    action_names: Vec<String>,
    /// Injected panics of the search actor per step (`faults.search_panic_p`) and their die:
    /// a step is where a search actor does real work between messages.
    pub panic_p: f64,
    pub dice: Option<Dice>,
}

impl RemoteEnv {
    /// `template` supplies what never changes (task, action names) without a round trip.
    pub fn new(addr: Addr<EnvActor>, id: u64, template: &TaskEnv) -> Self {
        Self {
            addr,
            id,
            kind: template.kind(),
            action_names: crate::env::Env::action_names(template),
            panic_p: 0.0,
            dice: None,
        }
    }

    fn call<M>(&self, msg: M) -> Result<M::Result, SampleError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        EnvActor: Handler<M>,
    {
        futures::executor::block_on(self.addr.send(msg))
            .map_err(|e| SampleError::EnvLost(e.to_string()))
    }

    fn lost(&self) -> SampleError {
        SampleError::EnvLost(format!(
            "episode {} is not held by its environment actor",
            self.id
        ))
    }
}

impl Drop for RemoteEnv {
    fn drop(&mut self) {
        // Best effort: a full or closed mailbox only means the actor is gone or busy shutting down.
        let _ = self.addr.try_send(Close(self.id));
    }
}

impl EnvHandle for RemoteEnv {
    fn reset(&mut self, seed: u64) -> Result<(), SampleError> {
        self.call(Open { id: self.id, seed })
    }
    fn observation(&self) -> Result<String, SampleError> {
        self.call(Observe(self.id))?.ok_or_else(|| self.lost())
    }
    fn kind(&self) -> TaskKind {
        self.kind
    }
    fn action_names(&self) -> Vec<String> {
        // Grid tasks have a fixed action set; only WebShop's changes with the page.
        if self.kind == TaskKind::WebShop
            && let Ok(Some(names)) = self.call(Actions(self.id))
        {
            return names;
        }
        self.action_names.clone()
    }
    fn play(
        &mut self,
        reply: &ParsedReply,
        actions_used: usize,
        rules: &TurnRules,
    ) -> Result<TurnResult, SampleError> {
        if let Some(dice) = &mut self.dice {
            maybe_panic(dice, self.panic_p, "search actor");
        }
        self.call(Play {
            id: self.id,
            reply: reply.clone(),
            actions_used,
            rules: *rules,
        })?
        .ok_or_else(|| self.lost())
    }
    fn fork(&self) -> Result<TaskEnv, SampleError> {
        self.call(Fork(self.id))?.ok_or_else(|| self.lost())
    }
}
