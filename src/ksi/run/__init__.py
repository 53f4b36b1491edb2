"""One `ksi run`: a list of steps (ksi.run.step), each with its phase name, run, undo and
describe(); the executor runs them in order and undoes the ones that ran in reverse order.
The node's steps are in ksi.run.steps; multi-node runs add ksi.federate.steps."""
