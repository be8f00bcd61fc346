export { sessionWorkflow } from './session';
