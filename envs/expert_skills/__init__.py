"""The scripted expert's skills beside pick-and-place (envs.scripted_expert runs them one at a time,
in the order envs.task_plan gives): open / close a drawer, turn a knob, push an object, put an
object into a cavity with a door (a microwave) and push the door shut."""
