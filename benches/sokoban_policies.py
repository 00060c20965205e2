"""What a search with the box-progress heuristic can reach on Sokoban (deterministic).

For each seed (rooms from `tsr env show`), play 5 turns of 1 or 2 moves (10-move budget); every
turn commit the reply whose score (rewards + 0.5 x gain of minus the box-target distance) is best
over an exhaustive search `depth` turns deep. depth 1 is best-of-N per turn with every reply
among the candidates; depth 2 and 3 are exhaustive lookahead. Prints the share of rooms solvable within
10 moves (the ceiling) and the success rate per depth.

Usage: python3 benches/sokoban_policies.py FIRST_SEED COUNT   (validation seeds: 123 32)
Needs target/release/tsr (cargo build --release). Standard library only.
"""
import subprocess, itertools, sys
TSR="target/release/tsr"
A={'L':(0,-1),'D':(1,0),'R':(0,1),'U':(-1,0)}
def load(seed):
    out=subprocess.run([TSR,'env','show','--env','sokoban','--seed',str(seed)],capture_output=True,text=True).stdout
    lines=out.splitlines(); gi=lines.index('Grid Map: '); grid=lines[gi+1:]
    walls=set(); targets=set(); boxes=set(); player=None
    for r,row in enumerate(grid):
        for c,ch in enumerate(row):
            if ch=='#': walls.add((r,c))
            if ch in 'O√S': targets.add((r,c))
            if ch in 'X√': boxes.add((r,c))
            if ch in 'PS': player=(r,c)
    return walls,targets,frozenset(boxes),player
def step(state,a,walls,targets):
    p,boxes=state; dr,dc=A[a]; n=(p[0]+dr,p[1]+dc)
    before=len(boxes&targets)
    if n in walls: return state,-0.1
    if n in boxes:
        b2=(n[0]+dr,n[1]+dc)
        if b2 in walls or b2 in boxes: return state,-0.1
        boxes=(boxes-{n})|{b2}
    after=len(boxes&targets); r=-0.1+(after-before)*1.0
    if after==len(targets): r+=10
    return (n,boxes),r
def pot(state,targets):
    return -sum(min(abs(b[0]-t[0])+abs(b[1]-t[1]) for t in targets) for b in state[1])
MACROS=[m for n in (1,2) for m in itertools.product('LDRU',repeat=n)]
def play(state,macro,walls,targets,budget):
    tot=0
    for a in macro[:budget]:
        state,r=step(state,a,walls,targets); tot+=r
        if len(state[1]&targets)==len(targets): return state,tot,True,
    return state,tot,False
def solved(s,targets): return len(s[1]&targets)==len(targets)
def search_policy(walls,targets,start,depth,w=0.5,turns=5,budget=10):
    # receding horizon: at each turn choose macro maximising best score over `depth` turns (exhaustive)
    state=start; used=0
    for t in range(turns):
        def best(s,d,used):
            if d==0 or used>=budget or solved(s,targets): return 0.0
            bs=-1e9
            for m in MACROS:
                s2,r,done=play(s,m,walls,targets,budget-used)
                v=r+w*(pot(s2,targets)-pot(s,targets))+best(s2,d-1,used+len(m))
                bs=max(bs,v)
            return bs
        bm=None;bs=-1e9
        for m in MACROS:
            s2,r,done=play(state,m,walls,targets,budget-used)
            v=r+w*(pot(s2,targets)-pot(state,targets))+best(s2,depth-1,used+len(m))
            if v>bs+1e-9: bs=v;bm=m
        state,_,_=play(state,bm,walls,targets,budget-used); used+=len(bm)
        if solved(state,targets): return True
        if used>=budget: return False
    return False
def solvable_within(walls,targets,start,budget=10):
    frontier={start}; seen={start}
    for _ in range(budget):
        nxt=set()
        for s in frontier:
            for a in 'LDRU':
                s2,_=step(s,a,walls,targets)
                if solved(s2,targets): return True
                if s2 not in seen: seen.add(s2); nxt.add(s2)
        frontier=nxt
    return False
seeds=range(int(sys.argv[1]),int(sys.argv[1])+int(sys.argv[2]))
ok=sum(solvable_within(*load(s)[:2],(load(s)[3],load(s)[2])) for s in seeds)
print('solvable within 10 moves',ok/len(seeds))
for depth in (1,2,3):
    wins=0
    for s in seeds:
        walls,targets,boxes,player=load(s)
        wins+=search_policy(walls,targets,(player,boxes),depth)
    print('depth',depth,wins/len(seeds))
