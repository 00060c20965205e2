"""What the expectation-optimal FrozenLake policy scores on given seeds *with their real slips*.

Validation plays every episode of a lake from the same seed, and the environment draws one
number per step whatever the action, so each validation lake comes with one fixed slip
sequence: the ceiling that matters for those episodes is what the optimal policy (the best
1- or 2-move reply each turn by exact expectation, from benches/frozenlake_policies.py) scores
on exactly those slips. Each turn's reply is played through `tsr env replay` with the lake's
seed, so the slips are the trainer's own.

Usage: python3 benches/frozenlake_realized.py FIRST_SEED COUNT   (validation seeds: 123 32)
Needs target/release/tsr (cargo build --release). Standard library only.
"""
import sys, json, subprocess, re
first, count = int(sys.argv[1]), int(sys.argv[2])
sys.argv = ['x', '123', '0']
# The map loader, slip model and exact values of the companion script (its top part).
exec(open('benches/frozenlake_policies.py').read().split('seeds=range')[0])
NAME = {'L': 'Left', 'D': 'Down', 'R': 'Right', 'U': 'Up'}
def replay(seed, acts):
    out = subprocess.run([TSR, 'env', 'replay', '--env', 'frozenlake', '--seed', str(seed), '--actions', ','.join(NAME[a] for a in acts)], capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith('{')]
tot = 0; tot_exp = 0; rows = []
for s in range(first, first + count):
    holes, goal, start = load(s)
    v = optimal(holes, goal)
    acts = []; cell = start; t = 5; won = False
    while t > 0:
        best = max(MACROS, key=lambda m: sum(p * v(o, t - 1) for o, p in run_macro(cell, m, holes, goal).items()))
        acts += list(best); t -= 1
        steps = replay(s, acts)
        last = steps[-1]
        if any(x['done'] for x in steps):
            won = any(x['success'] for x in steps); break
        m = re.search(r'Player: \((\d+), (\d+)\)', last['observation'])
        cell = (int(m.group(1)), int(m.group(2)))
    tot += won; tot_exp += v(start, 5)
    rows.append((s, round(v(start, 5), 3), won))
print(json.dumps(rows))
print(f'expected (ceiling) {tot_exp / count:.3f}; realized on these slips {tot / count:.3f} ({tot}/{count})')
