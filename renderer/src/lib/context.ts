import { createContext } from 'svelte';
import type { AppState } from './app.svelte.ts';

/** The app state, set once by App.svelte and read by every view. */
export const [getApp, setApp] = createContext<AppState>();
