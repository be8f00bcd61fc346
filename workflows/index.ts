export { sessionWorkflow } from './session';
export { debounceWorkflow } from './debounce';
