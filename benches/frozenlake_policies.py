"""What a per-turn search can reach on FrozenLake, as exact success probabilities.

For each seed (maps from `tsr env show`), compute by dynamic programming over the slip model
(0.8 straight, 0.1 each side; 5 turns of 1 or 2 open-loop moves):
  opt        the best any policy can do (the same figure as `tsr env ceiling`);
  greedy wW  a policy that, every turn, plays the 1- or 2-move reply with the best *expected*
             TSR score (reward + W x potential gain, the trainer's risk-aware FrozenLake
             heuristic): best-of-N in "independent" mode with every reply among the candidates
             and infinitely many simulations;
  greedy1 wW the same restricted to one move per turn.

Usage: python3 benches/frozenlake_policies.py FIRST_SEED COUNT   (validation seeds: 123 32)
Needs target/release/tsr (cargo build --release). Standard library only.
"""
import subprocess, itertools, sys
TSR="target/release/tsr"
A={'L':(0,-1),'D':(1,0),'R':(0,1),'U':(-1,0)}
ORDER='LDRU'
def turned(a,k): return ORDER[(ORDER.index(a)+k)%4]
def load(seed):
    out=subprocess.run([TSR,'env','show','--env','frozenlake','--seed',str(seed)],capture_output=True,text=True).stdout
    lines=out.splitlines(); gi=lines.index('Grid Map: ')
    grid=lines[gi+1:gi+5]
    holes=set(); goal=None; start=None
    for r,row in enumerate(grid):
        for c,ch in enumerate(row):
            if ch=='O': holes.add((r,c))
            if ch=='G': goal=(r,c)
            if ch=='P': start=(r,c)
    return holes,goal,start
def move(cell,d):
    r,c=cell; dr,dc=A[d]; return (min(max(r+dr,0),3),min(max(c+dc,0),3))
def step_dist(cell,a,p=0.8):
    s=(1-p)/2
    return [(move(cell,a),p),(move(cell,turned(a,-1)),s),(move(cell,turned(a,1)),s)]
MACROS=[m for n in (1,2) for m in itertools.product(ORDER,repeat=n)]
def run_macro(cell,macro,holes,goal):
    # returns dict outcome->prob ; outcome 'W' won, 'H' hole, or cell
    dist={cell:1.0}
    for a in macro:
        nd={}
        for c,pm in dist.items():
            if c in ('W','H'): nd[c]=nd.get(c,0)+pm; continue
            for n,q in step_dist(c,a):
                k='W' if n==goal else ('H' if n in holes else n)
                nd[k]=nd.get(k,0)+pm*q
        dist=nd
    return dist
def bfs(holes,goal):
    from collections import deque
    d={goal:0}; q=deque([goal])
    while q:
        x=q.popleft()
        for a in ORDER:
            n=move(x,a)
            if n not in d and n not in holes: d[n]=d[x]+1; q.append(n)
    return d
def potential(cell,holes,goal,dist):
    if cell=='H': return -10.0
    if cell=='W': cell=goal
    near=any(move(cell,a)!=cell and move(cell,a) in holes for a in ORDER)
    return -dist.get(cell,8)-(1.0 if near else 0.0)
def evaluate(policy,holes,goal,start,turns=5):
    # policy(cell, t) -> macro ; value iteration
    V={}
    def v(cell,t):
        if cell=='W': return 1.0
        if cell=='H' or t==0: return 0.0
        key=(cell,t)
        if key in V: return V[key]
        m=policy(cell,t)
        val=sum(p*v(o,t-1) for o,p in run_macro(cell,m,holes,goal).items())
        V[key]=val; return val
    return v(start,turns)
def optimal(holes,goal,turns=5):
    V={}
    def v(cell,t):
        if cell=='W': return 1.0
        if cell=='H' or t==0: return 0.0
        if (cell,t) in V: return V[(cell,t)]
        best=max(sum(p*v(o,t-1) for o,p in run_macro(cell,m,holes,goal).items()) for m in MACROS)
        V[(cell,t)]=best; return best
    return v
def greedy(holes,goal,w,dist,macros=MACROS):
    def pol(cell,t):
        before=potential(cell,holes,goal,dist)
        best=None;bs=-1e9
        for m in macros:
            sc=sum(p*((1.0 if o=='W' else 0.0)+w*(potential(o,holes,goal,dist)-before)) for o,p in run_macro(cell,m,holes,goal).items())
            if sc>bs+1e-12: bs=sc;best=m
        return best
    return pol
seeds=range(int(sys.argv[1]),int(sys.argv[1])+int(sys.argv[2]))
tot={}
for s in seeds:
    holes,goal,start=load(s); dist=bfs(holes,goal)
    res={'opt':optimal(holes,goal)(start,5)}
    for w in (0.5,1.0,2.0):
        res[f'greedy w{w}']=evaluate(greedy(holes,goal,w,dist),holes,goal,start)
        res[f'greedy1 w{w}']=evaluate(greedy(holes,goal,w,dist,[m for m in MACROS if len(m)==1]),holes,goal,start)
    for k,v in res.items(): tot[k]=tot.get(k,0)+v/len(seeds)
for k,v in tot.items(): print(f'{k}: {v:.3f}')
