export { sessionWorkflow } from './session';
export { debounceWorkflow } from './debounce';
export { outputDeliveryWorkflow } from './outputs';
export { reaperWorkflow } from './reaper';
